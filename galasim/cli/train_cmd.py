"""``galasim train``: GALA-A2C (or the A2C baseline) on Atari or gymnasium environments."""
from __future__ import annotations

import argparse
import os
import sys

from galasim.cli.output import HelpFormatter

EPILOG = """\
modes:
  async   one process per learner, shared-memory gossip (several learners may share one GPU); a
          learner that dies or hangs (--failure-timeout) is removed and the ring repaired, the others
          go on; --restart-failed restarts it and it rejoins from a neighbour's parameters
  sim     one process; the event scheduler (--compute/--delays, the simulator's grammar) decides in
          virtual time which learner updates next: bit-reproducible from --seed
  dist    one learner per torch.distributed rank (torchrun; gloo, also for GPU learners); failed
          learners are detected (--failure-timeout), bypassed, and rejoin when restarted (--rejoin)
  --algo a2c   the synchronous baseline: one learner over agents x envs-per-agent simulators

run folder (--out): config.json, logs/learner{r}_{episodes,train}.csv (true scores: unclipped, all
lives), logs/network.csv (consensus distance, diameter, L, staleness), logs/learner_distance.csv
(each learner's distance to the mean), logs/tensorboard/, checkpoints/learner{r}.pt, summary.json
(epsilon-ball figures and whether the bound held)

examples:
  galasim train --env CartPole-v1 --agents 4 --envs-per-agent 4 --frames 200k --out runs/cartpole
  galasim train --env pong --preset gala-paper --frames 10M --out runs/pong_gala
  galasim train --env pong --algo a2c --agents 4 --envs-per-agent 16 --frames 10M --out runs/pong_a2c
  galasim train --out runs/pong_gala --resume
  galasim train --env CartPole-v1 --agents 4 --failure-timeout 10 --restart-failed --out runs/faults
  torchrun --nproc-per-node 4 -m galasim train --mode dist --env CartPole-v1 --frames 200k --out runs/dist
  galasim train --env CartPole-v1 --agents 4 --mode sim --compute stragglers:0.25,4 --delays 2 --out runs/sim
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train GALA-A2C or A2C learners (Atari via ale-py, any gymnasium id)",
        description="Train actor-learners that gossip their parameters as GALA does, and monitor the "
        "epsilon-ball on the real network.", epilog=EPILOG, formatter_class=HelpFormatter)
    # Defaults are None so that a preset or config file is only overridden by flags actually given;
    # the effective defaults are TrainConfig's (shown in brackets).
    p.add_argument("--env", help="Atari id (PongNoFrameskip-v4, ALE/Pong-v5, pong) or gymnasium id [PongNoFrameskip-v4]")
    p.add_argument("--algo", choices=("gala", "a2c"), help="gala learners or the A2C baseline [gala]")
    p.add_argument("--agents", type=int, help="actor-learners [4]")
    p.add_argument("--envs-per-agent", type=int, help="simulators per learner [16]")
    p.add_argument("--topology", help="communication graph (a galasim.topology name) [ring]")
    p.add_argument("--peers", type=int, help="out-peers per learner [1]")
    p.add_argument("--sync-freq", help="staleness bound: iterations before blocking; 0 always waits, inf never [4]")
    p.add_argument("--resend", action="store_true", default=None,
                   help="galasim's extension: re-send skipped writes while blocked (not the reference protocol)")
    p.add_argument("--frames", help="total emulator frames over all learners, e.g. 10M, 500k [10M]")
    p.add_argument("--mode", choices=("async", "sim", "dist"),
                   help="real asynchrony, the simulator's virtual time, or torch.distributed ranks [async]")
    p.add_argument("--failure-timeout", type=float,
                   help="--mode async/dist: seconds without a heartbeat before a learner is declared dead [30]")
    p.add_argument("--restart-failed", type=int, nargs="?", const=1, metavar="N",
                   help="--mode async: restart a failed learner up to N times (N: 1 if omitted); it rejoins "
                        "from its checkpoint and a neighbour's parameters [0: finish with the survivors]")
    p.add_argument("--rejoin", action="store_true",
                   help="--mode dist: this rank restarts after a failure: rejoin from its checkpoint and a neighbour")
    p.add_argument("--compute", help="--mode sim: compute-time model [exponential:1]")
    p.add_argument("--delays", help="--mode sim: message delay model [0]")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="[auto]")
    p.add_argument("--threads", type=int,
                   help="torch threads per learner process on CPU (2 collapse ~10x when another process "
                        "holds a core) [1]")
    p.add_argument("--acting-graph", choices=("auto", "keep", "recompute"),
                   help="keep the acting forwards' graph for the update, or recompute it in one forward; "
                        "auto: keep from 8 simulators per learner up [auto]")
    p.add_argument("--precision", choices=("fp32", "bf16-mixed"),
                   help="bf16-mixed: the Nature CNN computes in bfloat16 (parameters, optimizer and gossip stay "
                        "float32); faster on a CPU with native bfloat16 (AVX512-BF16, AMX) [fp32]")
    p.add_argument("--seed", type=int, help="controls everything [0]")
    p.add_argument("--lr", type=float, help="RMSprop learning rate [7e-4]")
    p.add_argument("--rmsprop", choices=("torch", "tf"),
                   help="PyTorch's RMSprop (the GALA reference code's) or TensorFlow's (OpenAI Baselines' "
                        "A2C: smaller first steps) [torch]")
    p.add_argument("--ent-coef", type=float, help="entropy coefficient [0.01]")
    p.add_argument("--n-steps", type=int, help="rollout length (n-step returns) [5]")
    p.add_argument("--gae", action="store_true", default=None, help="generalised advantage estimation")
    p.add_argument("--lr-decay", action="store_true", default=None,
                   help="linear learning-rate decay to 0 over the run's --frames [off]")
    p.add_argument("--sticky-actions", type=float, help="Atari repeat-action probability [0]")
    p.add_argument("--max-episode-frames", type=int, help="Atari: truncate a game after this many frames [108000]")
    p.add_argument("--stop-return", type=float, help="stop a learner once its last 20 episodes average this")
    p.add_argument("--config", help="YAML or TOML file of settings (flags override it)")
    p.add_argument("--preset", choices=("gala-paper",),
                   help="gala-paper: 4 learners x 16 simulators, ring, 1 peer, lr 1.4e-3, sync-freq inf")
    p.add_argument("--out", help="run folder [runs/run]")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoints")
    p.add_argument("--checkpoint-every", help="frames between checkpoints, e.g. 1M [1M]")
    p.add_argument("--log-every", type=float,
                   help="seconds between rows of the learners' train logs and of the network monitor [2]")
    p.add_argument("--no-tensorboard", action="store_true", help="CSV logs only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from galasim.rl.config import TrainConfig, given_settings

    overrides = {
        "env": args.env, "algo": args.algo, "agents": args.agents, "envs_per_agent": args.envs_per_agent,
        "topology": args.topology, "peers": args.peers, "sync_freq": args.sync_freq, "resend": args.resend,
        "frames": args.frames, "mode": args.mode, "compute": args.compute, "delays": args.delays,
        "device": args.device, "acting_graph": args.acting_graph, "threads": args.threads,
        "precision": args.precision, "failure_timeout": args.failure_timeout,
        "restart_failed": args.restart_failed, "seed": args.seed, "lr": args.lr, "rmsprop": args.rmsprop,
        "ent_coef": args.ent_coef, "n_steps": args.n_steps, "gae": args.gae, "lr_decay": args.lr_decay,
        "sticky_actions": args.sticky_actions, "stop_return": args.stop_return,
        "max_episode_frames": args.max_episode_frames, "out": args.out,
        "checkpoint_every": args.checkpoint_every, "log_every": args.log_every,
        "tensorboard": False if args.no_tensorboard else None,
        "progress": False if args.no_progress else None,
    }
    given = given_settings(args.preset, args.config, **overrides)  # --resume refuses changes to these
    cfg = TrainConfig.from_dict(given)
    if cfg.mode == "dist":
        return _exit_dist(_report, cfg, given, args)
    return _report(cfg, given, args)


def _exit_dist(report, cfg, given, args) -> int:
    """A dist rank leaves with os._exit: gloo waits still pending on peers that finished or died
    sit in daemon threads, and a normal interpreter exit would abort on them."""
    try:
        code = report(cfg, given, args)
    except KeyboardInterrupt as exc:  # RunStopped says where it stopped
        print(f"galasim train: rank {os.environ.get('RANK')}: {exc or 'interrupted'}", file=sys.stderr)
        code = 130
    except BaseException as exc:
        print(f"galasim train: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _report(cfg, given, args) -> int:
    from galasim.rl.train import train

    try:
        result = train(resume=args.resume or args.rejoin, **given)
    except (RuntimeError, TimeoutError) as exc:  # a learner failed: its message is the diagnosis
        print(f"galasim train: error: {exc}", file=sys.stderr)
        return 1
    s = result.summary
    if cfg.mode == "dist":  # every rank merges the parts written so far; the last to finish has them all
        print(f"rank {os.environ['RANK']}: the summary of the ranks finished so far, {s['ranks_finished']} "
              f"of {s['learners']} (failed: {sorted(s['ranks_failed']) or 'none'}):")
    # frames: the run's; wall and rate: this launch's (a resumed run made the rest before)
    print(f"{s['algo']} {s['learners']}x{s['envs_per_learner']} on {s['env']}: {s['frames']} frames "
          f"({s['fps']:.0f} frames/s over this launch's {s['wall_seconds']:.1f} s); mean true return of "
          f"the last {s['episodes_in_mean']} episodes {s['mean_return_last_100']:.2f}")
    holds = {True: "holds", False: "VIOLATED", None: "not claimed"}[s.get("bound_holds")]
    empirical = s.get("empirical", 0.0)
    # None: the learners finished before the monitor's first snapshot of two of them iterating
    empirical = "not sampled (lower --log-every)" if empirical is None else f"{empirical:.4g}"
    print(f"epsilon-ball: empirical {empirical}  L {s.get('L', 0):.4g}  max staleness "
          f"{s.get('max_staleness', 0)}  epsilon {s.get('epsilon', float('nan')):.4g}  bound {holds}")
    print(f"run folder: {result.run_dir}")
    return 0
