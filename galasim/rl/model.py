"""The actor-critic network: Nature CNN for pixels, an MLP for vector observations.

Every learner builds its network from the run seed alone (:func:`make_model`), so all start from
identical parameters, as the epsilon-ball theorem assumes. The parameters are then laid out as views
into one flat vector (:func:`flatten_`), so gossip mixes a learner's whole network with a single
in-place tensor operation and a message is one contiguous copy.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import torch
from torch import nn

from galasim.rl.config import PRECISIONS


def _init(layer: nn.Module, gain: float) -> nn.Module:
    # Orthogonal weights and zero biases, the A2C standard (baselines, SB3, CleanRL).
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Policy (logits) and value heads: on a shared Nature CNN trunk for pixels, separate MLPs otherwise.

    Parameters
    ----------
    obs_shape : tuple of int
        ``(4, 84, 84)`` uint8 frames use the Nature CNN; a 1-D shape uses a two-layer tanh MLP.
    n_actions : int
        Number of discrete actions.
    hidden : int
        MLP width.
    precision : {"fp32", "bf16-mixed"}
        ``bf16-mixed`` runs the Nature CNN trunk in bfloat16 under ``torch.autocast``; the heads and
        everything after them stay float32 (``TrainConfig.precision``).
    """

    def __init__(self, obs_shape: tuple[int, ...], n_actions: int, hidden: int = 64, precision: str = "fp32"):
        super().__init__()
        relu = math.sqrt(2)
        self.pixels = len(obs_shape) == 3
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; allowed: {', '.join(PRECISIONS)}")
        if precision != "fp32" and not self.pixels:
            raise ValueError(f"precision {precision!r} applies to the Nature CNN (image observations); "
                             f"observations of shape {tuple(obs_shape)} use the MLP: use fp32")
        self.bf16 = precision == "bf16-mixed"
        self.channels_last = True  # NHWC input on CPU (the benchmark turns it off for its baseline)
        if self.pixels:
            c, h, w = obs_shape
            self.trunk = nn.Sequential(
                _init(nn.Conv2d(c, 32, 8, stride=4), relu), nn.ReLU(),
                _init(nn.Conv2d(32, 64, 4, stride=2), relu), nn.ReLU(),
                _init(nn.Conv2d(64, 64, 3, stride=1), relu), nn.ReLU(),
                nn.Flatten(),
            )
            with torch.no_grad():
                n_flat = self.trunk(torch.zeros(1, c, h, w)).shape[1]
            self.trunk.append(_init(nn.Linear(n_flat, 512), relu))
            self.trunk.append(nn.ReLU())
            self.policy = _init(nn.Linear(512, n_actions), 0.01)
            self.value = _init(nn.Linear(512, 1), 1.0)
        else:
            # Separate policy and value MLPs, as SB3's MlpPolicy: on small control tasks a shared
            # trunk lets the (large) value loss drown the policy's features.
            n_in = int(np.prod(obs_shape))

            def mlp(out: int, gain: float) -> nn.Sequential:
                return nn.Sequential(
                    nn.Flatten(),
                    _init(nn.Linear(n_in, hidden), relu), nn.Tanh(),
                    _init(nn.Linear(hidden, hidden), relu), nn.Tanh(),
                    _init(nn.Linear(hidden, out), gain),
                )

            self.policy, self.value = mlp(n_actions, 0.01), mlp(1, 1.0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits, value)`` for a batch of observations (uint8 frames are scaled to [0, 1])."""
        if self.pixels:
            x = obs.float() / 255.0
            if self.channels_last and x.device.type == "cpu":
                # NHWC input: oneDNN's backward is ~25% faster and the forward ~11% slower, so a
                # rollout's forwards plus the update take ~13% less (Nature CNN, one thread;
                # docs/benchmarks.md). The weights keep their layout: views of the flat vector.
                x = x.contiguous(memory_format=torch.channels_last)
            # bf16-mixed: the trunk holds nearly all the arithmetic; the heads stay float32, so
            # the logits that sample actions and the value in the loss keep float32's precision.
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                z = self.trunk(x)
            z = z.float()
            return self.policy(z), self.value(z).squeeze(-1)
        x = obs.float()
        return self.policy(x), self.value(x).squeeze(-1)


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively; elsewhere ``bf16-mixed`` is emulated and slower
    than float32. CPUs: AVX512-BF16 or AMX (oneDNN's bfloat16 kernels); GPUs: as torch reports."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def warn_if_emulated(precision: str, device: torch.device) -> None:
    """One warning line on stderr when ``precision`` is ``bf16-mixed`` and ``device`` has no native
    bfloat16 (:func:`native_bf16`): the run would be slower than in fp32."""
    if precision == "bf16-mixed" and not native_bf16(device):
        print(f"galasim train: warning: this {device.type.upper()} has no native bfloat16, so --precision "
              "bf16-mixed is emulated and slower than fp32", file=sys.stderr)


def make_model(obs_shape: tuple[int, ...], n_actions: int, seed: int, hidden: int = 64,
               device: str | torch.device = "cpu", precision: str = "fp32") -> tuple[ActorCritic, torch.Tensor]:
    """Build the network from ``seed`` alone and return it with its flat parameter vector.

    Examples
    --------
    >>> m1, f1 = make_model((4,), 2, seed=3); m2, f2 = make_model((4,), 2, seed=3)
    >>> bool(torch.equal(f1, f2)), f1.numel() == sum(p.numel() for p in m1.parameters())
    (True, True)
    """
    with torch.random.fork_rng(devices=[]):  # do not disturb the caller's global RNG state
        torch.manual_seed(seed)
        model = ActorCritic(tuple(obs_shape), int(n_actions), hidden, precision)
    model.to(device)
    return model, flatten_(model)


def flatten_(model: nn.Module) -> torch.Tensor:
    """Re-seat every parameter as a view into one new contiguous vector, which is returned."""
    params = list(model.parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params]).contiguous()
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat[offset:offset + n].view_as(p)
        offset += n
    return flat
