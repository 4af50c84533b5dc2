"""--mode dist: the torch.distributed transport (gloo on 127.0.0.1) and failed learners.

Every rank is a separate process with a bounded join; leftovers are killed. The store is hosted by
the test process, so that any rank may die (as examples/fault_trials.py does).
"""
from __future__ import annotations

import datetime
import json
import multiprocessing as mp
import os
import signal
import time

import pandas as pd
import pytest
import torch

from galasim.gossip.failures import interruptions
from galasim.rl.dist_train import free_port, host_store, spawn_rank
from run_logs import assert_logs_go_on

JOIN = 480  # seconds: a bound on every process join (a hang fails), never a timing assertion;
# generous because these runs take 70 s on an idle 2-core machine and several times that when loaded


def _store(port, world=3):
    import torch.distributed as dist

    return dist.TCPStore("127.0.0.1", port, world, is_master=False, timeout=datetime.timedelta(seconds=30))


def _semantics(rank, port, dim, queue, device="cpu"):
    """Rank 0 writes to rank 1 (and back) through DistTransport; rank 1 checks the slot states.

    ``device`` holds the parameters (messages travel through host memory either way)."""
    from galasim.gossip.dist import DistTransport, MalformedMessage

    try:
        store = _store(port, 2)
        t = DistTransport([(0, 1), (1, 0)], rank, dim[rank], store, {0: 1, 1: 1}, timeout=30)
        out, inn = t.out_edges(rank)[0], t.in_edges(rank)[0]
        log = []
        if rank == 0:
            assert t.free(out)
            t.write(out, torch.tensor([1.0, 2.0, 3.0], device=device))
            log.append(("free after write", t.free(out)))
            with pytest.raises(RuntimeError):
                t.write(out, torch.zeros(3, device=device))  # an unread message is never overwritten
            start = time.monotonic()
            while not t.free(out) and time.monotonic() - start < 20:  # freed by rank 1's read
                time.sleep(0.01)
            log.append(("free after read", t.free(out)))
            store.wait(["checked"])  # a second message must not land before rank 1 looks at the slot
            t.write(out, torch.tensor([10.0, 10.0, 10.0], device=device))  # a freed slot takes one
        else:
            x = torch.zeros(dim[rank], device=device)
            try:
                start = time.monotonic()
                while not t.fresh(inn) and time.monotonic() - start < 60:
                    time.sleep(0.01)
                t.accumulate(inn, x)
                log.append(("read", x.tolist()))
                log.append(("fresh after read", t.fresh(inn)))
            except MalformedMessage as exc:
                log.append(("malformed", str(exc)))
            store.set("checked", "1")
        queue.put((rank, log))
        time.sleep(1.0)  # let the last acknowledgement leave before exiting
    except BaseException as exc:
        queue.put((rank, [("error", repr(exc))]))
    queue.close()
    queue.join_thread()  # os._exit would otherwise lose what the queue's feeder has not sent
    os._exit(0)


def _run_pair(dim, device="cpu"):
    port = free_port()
    store = host_store(port, 2)
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_semantics, args=(r, port, dim, queue, device)) for r in range(2)]
    for p in procs:
        p.start()
    try:
        logs = dict(queue.get(timeout=JOIN) for _ in procs)
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        del store
    return logs


NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)])
def test_dist_transport_has_the_slot_semantics_of_shared_memory(device):
    logs = _run_pair({0: 3, 1: 3}, device)
    assert logs[0] == [("free after write", False), ("free after read", True)]
    assert logs[1] == [("read", [1.0, 2.0, 3.0]), ("fresh after read", False)]


def test_malformed_tensor_is_reported_by_rank():
    logs = _run_pair({0: 3, 1: 5})  # rank 0 sends 3 values, rank 1 expects 5
    kind, message = logs[1][0]
    assert kind == "malformed"
    assert "rank 0 sent a message of 3 float32 values on edge 0->1" in message and "expects 5" in message


def _train_args(out, frames, extra=()):
    return ["--env", "CartPole-v1", "--envs-per-agent", "2", "--frames", str(frames), "--out", str(out),
            "--no-tensorboard", "--no-progress", "--device", "cpu", "--sync-freq", "2", "--resend",
            "--failure-timeout", "3", "--checkpoint-every", "3000", *extra]


class Ranks:
    """Rank processes started like torchrun's, but each on its own (killing one spares the rest)."""

    def __init__(self, tmp_path, world):
        self.port, self.world, self.tmp = free_port(), world, tmp_path
        self.store = host_store(self.port, world)
        self.procs = {}

    def start(self, rank, args):
        self.procs[rank] = spawn_rank(rank, self.world, self.port, args, self.tmp / f"rank{rank}.log")
        return self.procs[rank]

    def wait(self, rank):
        return self.procs[rank].wait(timeout=JOIN)

    def log(self, rank):
        return (self.tmp / f"rank{rank}.log").read_text(errors="replace")

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)


@pytest.fixture
def ranks(tmp_path):
    made = []

    def make(world):
        made.append(Ranks(tmp_path, world))
        return made[-1]
    yield make
    for r in made:
        r.close()


def test_gala_a2c_cartpole_over_three_gloo_ranks(ranks, tmp_path):
    r = ranks(3)
    out = tmp_path / "run"
    config = tmp_path / "monitor.yaml"  # a monitor row every 0.2 s (default 2 s): the short run has several
    config.write_text("log_every: 0.2\n")
    for k in range(3):
        r.start(k, _train_args(out, 6000, ["--lr-decay", "--config", str(config)]))
    assert [r.wait(k) for k in range(3)] == [0, 0, 0], r.log(0)[-2000:]
    for k in range(3):  # the rate decays with the run's frames (the ranks' sum, in the store)
        rows = pd.read_csv(out / "logs" / f"learner{k}_train.csv")
        after = 1 - rows["total_frames"] / 6000
        before = 1 - rows["total_frames"].shift(fill_value=0) / 6000
        assert ((after - 1e-6 <= rows["lr"] / 7e-4) & (rows["lr"] / 7e-4 <= before + 1e-6)).all(), rows
        assert (rows["total_frames"] >= rows["frames"]).all() and rows["total_frames"].iloc[-1] >= 6000
    # each rank's distance to the mean, with every network row: the network's distance is their max
    each = pd.read_csv(out / "logs" / "learner_distance.csv").groupby(["time", "total_frames"])["distance"].max()
    network = pd.read_csv(out / "logs" / "network.csv")
    rows = network[network["distance"] > 0].set_index(["time", "total_frames"])["distance"]
    assert len(rows) and rows.values == pytest.approx(each.loc[rows.index].values, rel=1e-5, abs=1e-6)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dist" and summary["ranks_finished"] == [0, 1, 2]
    assert summary["frames"] >= 6000 and summary["faults_log"] == []
    # every rank prints the summary of the ranks finished so far, and says which: the last has all
    printed = [r.log(k) for k in range(3)]
    assert all("the summary of the ranks finished so far" in text for text in printed)
    assert sum("so far, [0, 1, 2] of 3 (failed: none)" in text for text in printed) >= 1
    assert summary["episodes_in_mean"] > 0
    network = pd.read_csv(out / "logs" / "network.csv")  # the epsilon-ball over time, by the lowest rank
    assert len(network) >= 1 and network["total_frames"].is_monotonic_increasing
    assert summary["empirical"] == pytest.approx(network["distance"].max(), rel=1e-5)  # CSV: 6 digits
    from galasim.rl import checkpoint

    # per-rank checkpoints load with weights_only=True; the ranks stopped together once their
    # frames summed to the budget (the store's counter; each may have begun one more update)
    made = [checkpoint.load_learner(out, k)["learner"]["frames"] for k in range(3)]
    assert min(made) > 0 and 6000 <= sum(made) < 6000 + 3 * 5 * 2, made


def _wait_for(pred, timeout=JOIN):
    start = time.monotonic()
    while not pred():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not reached")
        time.sleep(0.2)


def test_killed_rank_is_detected_and_the_others_finish_then_a_restart_rejoins(ranks, tmp_path):
    r = ranks(3)
    out = tmp_path / "run"
    frames = 150_000  # long enough that the survivors are still running when rank 1 restarts
    for k in range(3):
        r.start(k, _train_args(out, frames))
    _wait_for(lambda: (out / "checkpoints" / "learner1.pt").exists())  # rank 1 is training
    os.killpg(r.procs[1].pid, signal.SIGKILL)
    r.procs[1].wait(10)
    # Restart the same rank: it takes a new incarnation and rejoins from rank 0's parameters.
    r.start(1, _train_args(out, frames, ["--rejoin"]))
    assert [r.wait(k) for k in range(3)] == [0, 0, 0], r.log(1)[-2000:]
    assert "rejoined (incarnation 2) with the parameters of rank 0" in r.log(1)
    summary = json.loads((out / "summary.json").read_text())
    log = " | ".join(summary["faults_log"])
    assert "agent 1 dead" in log and "agent 1 rejoin" in log
    assert summary["assumptions_interrupted"] and summary["interrupted_time"] >= 0


def test_killed_rank_without_restart_is_bypassed(ranks, tmp_path):
    r = ranks(3)
    out = tmp_path / "run"
    for k in range(3):
        r.start(k, _train_args(out, 24_000))
    _wait_for(lambda: (out / "checkpoints" / "learner2.pt").exists())
    os.killpg(r.procs[2].pid, signal.SIGKILL)
    assert r.wait(0) == 0 and r.wait(1) == 0, r.log(0)[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks_finished"] == [0, 1]
    assert any("agent 2 dead" in line and "no heartbeat" in line for line in summary["faults_log"])
    assert "agent 2 down" in summary["assumptions_interrupted"][0]


def test_interruptions_closed_form():
    ev = [{"time": 1.0, "event": "dead", "agent": 0}, {"time": 2.0, "event": "dead", "agent": 1},
          {"time": 4.0, "event": "rejoin", "agent": 0}]
    lines, total = interruptions(ev, 10.0)
    assert total == 9.0 and len(lines) == 2  # union of [1, 4] and [2, 10]


def test_a2c_all_reduce_over_two_gloo_ranks_keeps_them_identical(ranks, tmp_path):
    """--mode dist --algo a2c: synchronous A2C, the gradient averaged by all_reduce over the ranks,
    so every rank takes the same step from the same initialisation: equal parameters throughout."""
    from galasim.rl import checkpoint

    r = ranks(2)
    out = tmp_path / "run"
    args = ["--env", "CartPole-v1", "--algo", "a2c", "--envs-per-agent", "2", "--frames", "4000",
            "--out", str(out), "--no-tensorboard", "--no-progress", "--device", "cpu",
            "--checkpoint-every", "2000"]
    for k in range(2):
        r.start(k, args)
    assert [r.wait(k) for k in range(2)] == [0, 0], r.log(0)[-2000:] + r.log(1)[-2000:]
    states = [checkpoint.load_learner(out, k)["learner"] for k in range(2)]
    assert states[0]["frames"] == states[1]["frames"] == 2000 and states[0]["updates"] > 1
    assert torch.equal(states[0]["params"], states[1]["params"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["algo"] == "a2c" and summary["mode"] == "dist" and summary["ranks_finished"] == [0, 1]
    assert summary["frames"] == 4000 and summary["faults_log"] == []
    assert summary["empirical"] == 0.0 and summary["bound_holds"] is True
    episodes = sum(len((out / "logs" / f"learner{k}_episodes.csv").read_text().splitlines()) - 1 for k in range(2))
    assert summary["episodes_in_mean"] == min(episodes, 100)  # both ranks' episodes count
    for k in range(2):  # the logs count the run's frames, as in --mode async: both ranks' together
        rows = pd.read_csv(out / "logs" / f"learner{k}_train.csv")
        assert (rows["total_frames"] == 2 * rows["frames"]).all() and rows["total_frames"].iloc[-1] == 4000


@pytest.mark.parametrize("algo", ["gala", "a2c"])
def test_kill_of_one_rank_stops_every_rank_with_a_checkpoint_and_resume_finishes(ranks, tmp_path, algo):
    """SIGTERM to one rank (torchrun sends its workers SIGTERM on Ctrl-C): every rank finishes its
    update, writes a checkpoint and exits with 130; the same launch with --resume finishes the run."""
    from galasim.rl import checkpoint

    out = tmp_path / "run"
    extra = ["--algo", algo] if algo == "a2c" else []
    r = ranks(2)
    for k in range(2):
        r.start(k, _train_args(out, 2_000_000, extra))  # far more than the test waits for
    _wait_for(lambda: (out / "checkpoints" / "learner1.pt").exists())
    os.kill(r.procs[1].pid, signal.SIGTERM)
    assert [r.wait(k) for k in range(2)] == [130, 130], r.log(0)[-2000:] + r.log(1)[-2000:]
    assert "rank 1: stopped at" in r.log(1) and "--resume" in r.log(1)
    assert not (out / "summary.json").exists()
    states = [checkpoint.load_learner(out, k)["learner"] for k in range(2)]
    for k, state in enumerate(states):  # the checkpoint holds the rank's last logged update
        rows = pd.read_csv(out / "logs" / f"learner{k}_train.csv")
        assert rows["frames"].iloc[-1] == state["frames"] and rows["update"].iloc[-1] == state["updates"]
    if algo == "a2c":  # both stopped after the same all-reduced update
        assert states[0]["updates"] == states[1]["updates"]
        assert torch.equal(states[0]["params"], states[1]["params"])
    made = sum(s["frames"] for s in states)
    assert made < 2_000_000

    resumed = ranks(2)  # a new launch: a new store, as a new torchrun has
    total = made + 2000 if algo == "gala" else 2 * states[0]["frames"] + 2000
    for k in range(2):
        resumed.start(k, _train_args(out, total, [*extra, "--resume"]))
    assert [resumed.wait(k) for k in range(2)] == [0, 0], resumed.log(0)[-2000:] + resumed.log(1)[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ranks_finished"] == [0, 1] and summary["frames"] >= total
    for k in range(2):  # no duplicated or lost rows across the stop
        rows = pd.read_csv(out / "logs" / f"learner{k}_train.csv")
        assert rows["update"].is_monotonic_increasing and rows["update"].is_unique
        assert rows["frames"].iloc[-1] == checkpoint.load_learner(out, k)["learner"]["frames"]
    assert_logs_go_on(out, 2)  # the new launch went on with the stopped one's time and counters
