"""Fault trials of ``--mode dist`` (issue 9): kill a rank at a random time, check the run survives.

Each trial starts ``--ranks`` GALA-A2C ranks on CartPole-v1 over gloo on 127.0.0.1 (each rank its
own process, as on separate machines), SIGKILLs one rank chosen at random at a random moment after
it has written its first checkpoint, restarts it with ``--rejoin`` after ``--restart-after``
seconds, and checks from the run's summary that

* the kill was **detected**: a ``dead`` event for that rank, and how long after the kill (the
  clocks agree: every process is on this machine and the events use the store's shared origin);
* **every rank finished** (the survivors and the restarted rank), once the ranks' frames summed to the budget;
* the restarted rank **rejoined** (a ``rejoin`` event).

Run (about 1-2 minutes a trial on 2 cores)::

    python examples/fault_trials.py --trials 10 --out fault_trials.csv

The table (one row per trial) is written atomically; the last line says how many trials passed.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from galasim.atomic import atomic_write_text
from galasim.rl.dist_train import free_port, host_store, spawn_rank

JOIN = 900  # seconds: any rank still running then is a failed trial (reported, then killed)


def _args(out: Path, frames: int, timeout: float, extra: tuple[str, ...] = ()) -> list[str]:
    return ["--env", "CartPole-v1", "--envs-per-agent", "2", "--frames", str(frames), "--out", str(out),
            "--no-tensorboard", "--no-progress", "--device", "cpu", "--sync-freq", "2", "--resend",
            "--failure-timeout", str(timeout), "--checkpoint-every", "3000", *extra]


def _start_time(store) -> float:
    import torch.distributed as dist

    runs = dist.PrefixStore("galasim-run/0/", store)  # the prefix every rank uses (dist_train.dist_env)
    return float(runs.get("galasim/t0").decode())


def trial(k: int, ranks: int, frames: int, timeout: float, restart_after: float, rng: random.Random,
          folder: Path) -> dict:
    out = folder / f"trial{k}"
    port = free_port()
    store = host_store(port, ranks)
    victim = rng.randrange(ranks)
    procs = {r: spawn_rank(r, ranks, port, _args(out, frames, timeout), folder / f"trial{k}_rank{r}.log")
             for r in range(ranks)}
    row = {"trial": k, "victim": victim}
    deadline = time.monotonic() + JOIN
    try:
        while not (out / "checkpoints" / f"learner{victim}.pt").exists():
            if procs[victim].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rank {victim} ended before its first checkpoint")
            time.sleep(0.1)
        time.sleep(rng.uniform(0.0, 3.0))
        os.killpg(procs[victim].pid, signal.SIGKILL)
        killed_at = time.time() - _start_time(store)
        procs[victim].wait(30)
        time.sleep(restart_after)
        procs[victim] = spawn_rank(victim, ranks, port, _args(out, frames, timeout, ("--rejoin",)),
                                   folder / f"trial{k}_rank{victim}_restart.log")
        codes = [procs[r].wait(timeout=JOIN) for r in range(ranks)]
        summary = json.loads((out / "summary.json").read_text())
        events = [e for p in (out / "summaries").glob("rank*.json")
                  for e in json.loads(p.read_text()).get("events", [])]
        dead = [e["time"] for e in events if e["event"] == "dead" and e["agent"] == victim]
        row.update({
            "killed_at_s": killed_at,
            "detected": bool(dead),
            "detection_s": min(dead) - killed_at if dead else float("nan"),
            "all_finished": codes == [0] * ranks and summary["ranks_finished"] == list(range(ranks))
            and summary["frames"] >= frames,
            "rejoined": any(e["event"] == "rejoin" and e["agent"] == victim for e in events),
            "interrupted_s": summary["interrupted_time"],
        })
    except Exception as exc:  # a failed trial is a row of the table, not the end of the study
        row.update({"detected": False, "all_finished": False, "rejoined": False, "error": str(exc)})
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        del store
    row["passed"] = bool(row["detected"] and row["all_finished"] and row["rejoined"]
                         and row.get("detection_s", 1e9) <= timeout + 1.0)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--trials", type=int, default=10, help="trials")
    p.add_argument("--ranks", type=int, default=4, help="ranks (learners on a directed ring)")
    p.add_argument("--frames", type=int, default=150_000, help="the run's frame budget (all ranks)")
    p.add_argument("--failure-timeout", type=float, default=3.0, help="seconds without heartbeat = dead")
    p.add_argument("--restart-after", type=float, default=5.0, help="seconds between the kill and restart")
    p.add_argument("--seed", type=int, default=0, help="seeds the victims and kill times")
    p.add_argument("--out", default="fault_trials.csv", help="table of the trials (.csv)")
    args = p.parse_args(argv)
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.trials):
            rows.append(trial(k, args.ranks, args.frames, args.failure_timeout, args.restart_after, rng,
                              Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
            atomic_write_text(args.out, pd.DataFrame(rows).to_csv(index=False))
    table = pd.DataFrame(rows)
    passed = int(table["passed"].sum())
    print(f"{passed} of {len(table)} trials passed: detected within the timeout (+1 s of polling), every "
          f"rank finished, the restarted rank rejoined; detection "
          f"{table['detection_s'].min():.2f}-{table['detection_s'].max():.2f} s after the kill")
    return 0 if passed == len(table) else 1


if __name__ == "__main__":
    sys.exit(main())
