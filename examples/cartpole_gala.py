"""GALA-A2C on CartPole-v1: 4 learners on a directed ring, each with 4 simulators, gossiping asynchronously.

Run:  python examples/cartpole_gala.py [--out runs/cartpole_gala] [--frames 200k]

Each learner stops once the mean true return of its last 20 episodes reaches 195 (CartPole's
classic "solved" threshold) or when the frame budget is spent; the script prints, per learner,
the frames it needed and its last-20 mean, then the network's epsilon-ball figures.

Hyperparameters: A2C's standard ones except lr 2e-3 and no entropy bonus, tuned for CartPole
(a 4-dimensional task: SB3's zoo also drops the entropy bonus there). The documented Pong runs
(docs/training.md, logs in docs/runs/):

    galasim train --env PongNoFrameskip-v4 --algo a2c --agents 1 --envs-per-agent 16 --lr 7e-4 --frames 10M --checkpoint-every 500k --out runs/pong_a2c1x16
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 4 --lr 7e-4 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x4
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 4 --lr 7e-4 --seed 1 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x4_seed1
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --seed 1 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_seed1
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --seed 2 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_seed2
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --seed 3 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_seed3
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --seed 4 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_seed4 --no-progress
    galasim train --env PongNoFrameskip-v4 --algo a2c --agents 1 --envs-per-agent 8 --lr 7e-4 --frames 10M --checkpoint-every 500k --out runs/pong_a2c1x8
    galasim train --env PongNoFrameskip-v4 --algo a2c --agents 1 --envs-per-agent 8 --lr 7e-4 --seed 1 --frames 10M --checkpoint-every 500k --out runs/pong_a2c1x8_seed1
    galasim train --env PongNoFrameskip-v4 --algo a2c --agents 1 --envs-per-agent 8 --lr 7e-4 --precision bf16-mixed --frames 10M --checkpoint-every 500k --out runs/pong_a2c1x8_bf16
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --precision bf16-mixed --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_bf16
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --precision bf16-mixed --seed 1 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_bf16_seed1
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --precision bf16-mixed --seed 2 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_bf16_seed2
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 7e-4 --precision bf16-mixed --gae --seed 1 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_bf16_gae_seed1
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 1 --lr 7e-4 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x1
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 1.4e-3 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_lr1.4e-3
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 1.4e-3 --rmsprop tf --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_tf
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --config examples/rmsprop_tf_eps1e-10.yaml --envs-per-agent 2 --lr 1.4e-3 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_tf_eps
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 1e-3 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_lr1e-3 --no-progress
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --envs-per-agent 2 --lr 1e-3 --seed 1 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_lr1e-3_seed1 --no-progress
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --config examples/rmsprop_tf_eps1e-10.yaml --envs-per-agent 2 --topology complete --lr 1.4e-3 --frames 10M --checkpoint-every 500k --out runs/pong_gala4x2_complete
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --frames 10M --checkpoint-every 500k --out runs/pong_gala
    galasim train --env PongNoFrameskip-v4 --preset gala-paper --lr 7e-4 --frames 10M --checkpoint-every 500k --out runs/pong_gala_lr7e-4
    galasim train --out runs/pong_a2c1x16 --resume --frames 15M   # both continued to 15M frames
    galasim train --out runs/pong_gala4x4 --resume --frames 15M
"""
import argparse

import pandas as pd

import galasim

if __name__ == "__main__":  # learners are spawned processes: the guard is required
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/cartpole_gala")
    parser.add_argument("--frames", default="200k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    result = galasim.train(
        env="CartPole-v1", agents=4, envs_per_agent=4, topology="ring", peers=1, sync_freq=4,
        lr=2e-3, ent_coef=0.0, frames=args.frames, stop_return=195, stop_window=20,
        seed=args.seed, out=args.out, mode="async", tensorboard=False, progress=False,
        log_every=0.25,  # learners solve it in a few seconds: sample the network as often as the parent looks
    )
    for rank in range(4):
        episodes = pd.read_csv(result.run_dir / "logs" / f"learner{rank}_episodes.csv")
        print(f"learner {rank}: {episodes['frames'].max()} frames, {len(episodes)} episodes, "
              f"mean of the last 20: {episodes['return'].tail(20).mean():.1f}")
    s = result.summary
    if s["empirical"] is None:  # no monitor row saw two learners past their first update
        spread = "consensus distance not sampled (lower log_every)"
    else:
        spread = f"consensus distance sup {s['empirical']:.4g}, diameter sup {s['empirical_diameter']:.4g}"
    print(f"network: {spread}, L {s['L']:.4g}, max staleness {s['max_staleness']}, {s['wall_seconds']:.1f} s")
