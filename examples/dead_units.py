"""How much of a Pong learner's network is dead: hidden units that never fire on real frames.

A ReLU unit whose input is negative for every observation passes no gradient and stays dead; a
network whose 512 hidden units mostly are acts the same whatever it sees (its logits barely vary
over the batch) and has stopped learning. docs/training.md uses this to tell a collapsed Pong run
from a slow one.

    python examples/dead_units.py init runs/pong_gala4x2 runs/pong_gala4x2_tf

``init`` is the network every run starts from (seed 0). For each run folder it reads learner 0's
last checkpoint. The observations: 8 Pong simulators (seed 123) stepped 200 times with uniformly
random actions, every 4th step kept (400 frames).
"""
import sys

import numpy as np
import torch

from galasim.rl import checkpoint
from galasim.rl.envs import VecEnv
from galasim.rl.model import make_model


def observations() -> tuple[torch.Tensor, int]:
    """A batch of real Pong frames, and the number of actions."""
    env = VecEnv("PongNoFrameskip-v4", 8, seed=123)
    n_actions = int(env.action_space.n)
    env.reset()
    rng = np.random.default_rng(0)
    kept = []
    for t in range(200):
        obs, _, _, _ = env.step(rng.integers(0, n_actions, 8))
        if t % 4 == 0:
            kept.append(torch.as_tensor(obs))
    env.close()
    return torch.cat(kept), n_actions


def report(name: str, x: torch.Tensor, n_actions: int) -> None:
    model, flat = make_model(tuple(x.shape[1:]), n_actions, seed=0)
    frames = 0
    if name != "init":
        state = checkpoint.load_learner(name, 0)["learner"]
        flat.copy_(state["params"])
        frames = state["frames"]
    relus = []
    with torch.no_grad():
        h = x.float() / 255.0
        for layer in model.trunk:
            h = layer(h)
            if isinstance(layer, torch.nn.ReLU):
                relus.append(h)
        logits, _ = model(x)
    conv3, hidden = relus[2], relus[3]
    print(f"{name}: learner 0 at {frames:,} of its frames; dead hidden units "
          f"{float((hidden.amax(0) <= 0).float().mean()):.1%}, dead channels of the last convolution "
          f"{float((conv3.amax((0, 2, 3)) <= 0).float().mean()):.1%}, "
          f"std of the logits over the batch {float(logits.std(0).mean()):.4f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    batch, n_actions = observations()
    for run in sys.argv[1:] or ["init"]:
        report(run, batch, n_actions)
