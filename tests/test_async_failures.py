"""--mode async: a learner process that dies or hangs is removed, the ring repaired, the others go on;
with --restart-failed it comes back and rejoins from a neighbour's parameters.

Each run is a ``galasim train`` subprocess in its own session (killed whole at the end); a learner is
killed or stopped once its first checkpoint exists (the learner is then training), found through
``logs/pids.json``. Waits are bounded generously and nothing asserts a duration.
"""
from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from galasim.gossip.failures import DeclaredDead, Membership
from galasim.rl import checkpoint

JOIN = 480  # seconds: a bound on every wait (a hang fails), never a timing assertion


def _args(out, frames, extra=()):
    return [sys.executable, "-m", "galasim", "train", "--env", "CartPole-v1", "--agents", "3",
            "--envs-per-agent", "2", "--frames", str(frames), "--out", str(out), "--no-tensorboard",
            "--no-progress", "--device", "cpu", "--sync-freq", "2", "--checkpoint-every", "3000",
            "--failure-timeout", "10", *extra]


def _deliver_sigint():
    # A job started in the background by a non-interactive shell (as CI may start the tests)
    # inherits SIGINT ignored; a terminal's Ctrl-C reaches a foreground run, so restore it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Run:
    """A ``galasim train --mode async`` run in its own session (every process killed at the end)."""

    def __init__(self, out, frames, extra=()):
        self.out, self.log = out, out.parent / f"{out.name}.log"
        with open(self.log, "wb") as f:
            self.proc = subprocess.Popen(_args(out, frames, extra), stdout=f, stderr=subprocess.STDOUT,
                                         start_new_session=True, preexec_fn=_deliver_sigint)

    def learner_pid(self, rank):
        """Learner ``rank``'s pid, once its first checkpoint exists (it is training)."""
        self.wait_until_checkpointed(rank, 0)
        return json.loads((self.out / "logs" / "pids.json").read_text())[str(rank)]

    def wait_until_checkpointed(self, rank, frames):
        """Until learner ``rank``'s checkpoint exists and holds at least ``frames`` of its frames."""
        start = time.monotonic()
        while not (checkpoint.exists(self.out, rank)
                   and checkpoint.load_learner(self.out, rank)["learner"]["frames"] >= frames):
            assert self.proc.poll() is None, self.text()[-2000:]
            assert time.monotonic() - start < JOIN, f"learner {rank} wrote no checkpoint of {frames}+ frames"
            time.sleep(0.1)

    def wait(self):
        code = self.proc.wait(timeout=JOIN)
        return code, json.loads((self.out / "summary.json").read_text()) if code == 0 else None

    def text(self):
        return self.log.read_text(errors="replace")

    def close(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        try:  # learners left behind by a failed test (they are in the run's session)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def runs():
    made = []

    def make(*args, **kw):
        made.append(Run(*args, **kw))
        return made[-1]
    yield make
    for r in made:
        r.close()


def test_killed_learner_is_removed_and_the_others_finish(runs, tmp_path):
    frames = 30_000
    run = runs(tmp_path / "run", frames)
    os.kill(run.learner_pid(1), signal.SIGKILL)
    code, summary = run.wait()
    assert code == 0, run.text()[-2000:]
    assert "learner 1 failed (killed by signal SIGKILL)" in run.text()
    assert summary["learners_finished"] == [0, 2] and "SIGKILL" in summary["learners_failed"]["1"]
    # the survivors made the frames the dead learner could not, until the run's total reached the budget
    assert min(checkpoint.load_learner(run.out, k)["learner"]["frames"] for k in (0, 2)) > frames // 3
    assert summary["frames"] >= frames
    assert any("agent 1 dead" in line and "killed by signal SIGKILL" in line for line in summary["faults_log"])
    assert "agent 1 down" in summary["assumptions_interrupted"][0] and summary["interrupted_time"] > 0
    assert "interrupted the assumptions" in summary["bound_note"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_failed_learner_is_restarted_rejoins_and_finishes(runs, tmp_path, sig):
    frames = 60_000
    run = runs(tmp_path / "run", frames, ["--restart-failed"])
    pid = run.learner_pid(1)
    os.kill(pid, sig)  # SIGSTOP: hung, alive and silent; only its heartbeat can tell
    code, summary = run.wait()
    assert code == 0, run.text()[-2000:]
    assert json.loads((run.out / "logs" / "pids.json").read_text())["1"] != pid  # a new process
    assert summary["learners_finished"] == [0, 1, 2] and summary["restarts"] == {"1": 1}
    # all three, the restarted one from its checkpoint, went on until their frames reached the budget
    assert sum(checkpoint.load_learner(run.out, k)["learner"]["frames"] for k in range(3)) >= frames
    log = " | ".join(summary["faults_log"])
    assert "agent 1 dead" in log and "agent 1 rejoin" in log and "rejoined (incarnation 2)" in run.text()
    if sig == signal.SIGSTOP:
        assert "no heartbeat" in log and "killed by the parent" in run.text()
    else:
        assert "killed by signal SIGKILL" in log
    assert "agent 1 down (detected at" in summary["assumptions_interrupted"][0]


def test_a_paused_learner_makes_fewer_frames_and_nobody_trains_alone(runs, tmp_path):
    # GALA learners stop together once their frames sum to the budget: a learner paused for a while
    # (shorter than the failure timeout) ends with fewer frames than an equal share and the others
    # with more; with equal shares it would train on alone at the end, after they had finished.
    # With --lr-decay every learner's rate follows the run's progress (its summed frames), so all
    # reach 0 together; a learner's own equal share would leave the paused one far from 0 at the end.
    frames, lr = 60_000, 7e-4
    run = runs(tmp_path / "run", frames, ["--sync-freq", "inf", "--failure-timeout", "60", "--lr-decay"])
    pid = run.learner_pid(1)
    os.kill(pid, signal.SIGSTOP)
    # Paused until learner 0 has made 8,000 frames (learner 1 about 1,000), not for a fixed time: on a
    # fast machine the others once made the whole budget within a 6 s pause, and the paused learner
    # then never came back to a run that was still going.
    run.wait_until_checkpointed(0, 8_000)
    os.kill(pid, signal.SIGCONT)
    code, summary = run.wait()
    assert code == 0, run.text()[-2000:]
    made = [checkpoint.load_learner(run.out, k)["learner"]["frames"] for k in range(3)]
    assert made[1] < frames // 3 < max(made[0], made[2]), made
    assert frames <= sum(made) < frames + 3 * 5 * 2  # each may have begun one more update
    assert summary["learners_finished"] == [0, 1, 2] and summary["faults_log"] == []
    for k in range(3):
        rows = pd.read_csv(run.out / "logs" / f"learner{k}_train.csv")
        # A row's lr was set when its update started: after the previous row, before this one.
        after = 1 - rows["total_frames"] / frames
        before = 1 - rows["total_frames"].shift(fill_value=0) / frames
        assert ((after - 1e-6 <= rows["lr"] / lr) & (rows["lr"] / lr <= before + 1e-6)).all(), rows
        assert rows["lr"].iloc[-1] < 0.02 * lr  # its last update started near the end of the run
    # each learner's distance to the mean, every monitor tick: the network's distance is their max
    # (ticks after every learner has finished have no learner rows)
    network = pd.read_csv(run.out / "logs" / "network.csv").set_index("time")
    each = pd.read_csv(run.out / "logs" / "learner_distance.csv").groupby("time")
    assert len(each) >= len(network) - 3 and set(each.groups) <= set(network.index)
    assert each["learner"].nunique().max() == 3
    top = each["distance"].max()
    assert top.values == pytest.approx(network.loc[top.index, "distance"].values, rel=1e-5, abs=1e-6)


class _Process:
    """A learner process as the supervisor sees it."""

    def __init__(self, exitcode=None):
        self.exitcode, self.pid = exitcode, 4242

    def start(self):
        pass

    def is_alive(self):
        return self.exitcode is None


def test_a_learner_restarted_from_its_checkpoint_counts_only_the_checkpointed_frames(tmp_path):
    # While it restarts, the frames it made after its last checkpoint must not count toward the
    # budget: it will make them again, and its peers would otherwise stop short and leave it alone.
    import torch

    from galasim.rl.config import TrainConfig
    from galasim.rl.train import _Supervisor

    (tmp_path / "logs").mkdir()
    cfg = TrainConfig(env="CartPole-v1", algo="gala", agents=3, restart_failed=1, out=str(tmp_path))
    shared = {"frames": torch.tensor([5000, 7000, 5000]), "checkpointed": torch.tensor([4000, 4000, 4000]),
              "stop": torch.zeros(1, dtype=torch.bool), "done": torch.zeros(3, dtype=torch.bool)}
    membership = SimpleNamespace(dead=set(), all_started=lambda: False,
                                 declare_dead=lambda rank, reason: membership.dead.add(rank))
    context = SimpleNamespace(Process=lambda **kw: _Process())
    sup = _Supervisor(cfg, context, None, shared, queue.Queue(), membership, None)
    sup.procs = [_Process(), _Process(exitcode=-signal.SIGKILL), _Process()]
    assert sup.check() is None
    assert sup.restarts == [0, 1, 0] and membership.dead == {1}
    assert shared["frames"].tolist() == [5000, 4000, 5000]


class _Store:
    """The part of a TCPStore that Membership uses, in a dict."""

    def __init__(self):
        self.d = {}

    def add(self, key, n):
        self.d[key] = int(self.d.get(key, 0)) + n
        return self.d[key]

    def set(self, key, value):
        self.d[key] = value.encode() if isinstance(value, str) else value

    def get(self, key):
        return self.d[key]

    def check(self, keys):
        return all(k in self.d for k in keys)


def test_observer_membership_detects_silence_declares_exits_and_sees_rejoins():
    store, now = _Store(), [0.0]
    clock = lambda: now[0]  # noqa: E731
    parent = Membership(store, -1, 2, 5.0, clock=clock, observer=True)
    parent.declare_dead(1, "exited with code 1")  # before it started: given incarnation 1, dead
    assert not parent.all_started()
    learner0 = Membership(store, 0, 2, 5.0, clock=clock)
    assert parent.all_started() and parent.dead == {1}
    assert learner0.wait_for_all(1.0) == {0: 1, 1: 1} and learner0.dead == {1}
    parent.poll(force=True)
    now[0] = 6.0  # learner 0 silent for longer than the timeout
    assert parent.poll(force=True).dead == [0]
    assert "no heartbeat" in parent.events[-1]["reason"] and parent.events[-1]["by"] == "parent"
    with pytest.raises(DeclaredDead, match="rank 0 was declared dead"):  # it learns so itself
        learner0.poll(force=True)
    restarted = Membership(store, 1, 2, 5.0, clock=clock)  # learner 1 restarts: incarnation 2
    assert restarted.restarted and parent.poll(force=True).rejoined == [1] and 1 not in parent.dead
    assert [e["event"] for e in parent.events] == ["dead", "dead", "rejoin"]


def test_a_rejoined_learners_first_message_is_not_dropped():
    """Shared memory cannot tell incarnations apart: a receiver that learns of a rejoin after the
    restarted learner wrote must mix that message, not drop it (dropping it while the writer
    waited for the ring's answer deadlocked all three learners)."""
    import torch

    from galasim.gossip.failures import RepairedTransport
    from galasim.gossip.repair import possible_edges
    from galasim.gossip.transport import InProcessTransport

    ring = [(0, 1), (1, 2), (2, 0)]
    store, now = _Store(), [0.0]

    def clock():
        now[0] += 1.0  # every poll is due
        return now[0]
    members = [Membership(store, r, 3, 100.0, clock=clock) for r in range(3)]
    for m in members:
        m.wait_for_all(1.0)
    slots = InProcessTransport(possible_edges(ring, {0, 1, 2}), dim=1)
    receiver = RepairedTransport(slots, ring, members[2])
    receiver.bind(torch.zeros(1))
    b = slots.edges.index((1, 2))
    members[0].declare_dead(1, "killed")
    assert receiver.poll().dead == [1] and not receiver.edge_live(b)
    restarted = Membership(store, 1, 3, 100.0, clock=clock)  # incarnation 2
    restarted.wait_for_all(1.0)
    slots.write(b, torch.ones(1))  # its first message, before the receiver has seen it back
    assert receiver.poll().rejoined == [1]
    assert receiver.fresh(b)  # still there, to be mixed


@pytest.mark.parametrize("who, sig", [("parent", signal.SIGTERM), ("group", signal.SIGINT),
                                      ("learner", signal.SIGTERM)], ids=["kill", "ctrl-c", "kill-a-learner"])
def test_a_stopped_run_saves_every_learners_checkpoint_and_resumes(runs, tmp_path, who, sig):
    """kill (SIGTERM) of the parent or of one learner, and Ctrl-C (SIGINT to the whole process
    group, as a terminal sends it), stop the run: every learner ends its update and writes a
    checkpoint of the frames it made, the command exits 130 and says how to continue, and
    --resume finishes the run."""
    frames = 2_000_000  # far more than is made before the signal
    run = runs(tmp_path / "run", frames)
    pid = run.learner_pid(1)
    for rank in (0, 2):
        run.learner_pid(rank)  # every learner is training
    {"parent": lambda: os.kill(run.proc.pid, sig), "group": lambda: os.killpg(run.proc.pid, sig),
     "learner": lambda: os.kill(pid, sig)}[who]()
    assert run.proc.wait(timeout=JOIN) == 130, run.text()[-2000:]
    assert "stopped; continue from the last checkpoints with: galasim train --out" in run.text()
    assert not (run.out / "summary.json").exists()
    made = 0
    for rank in range(3):  # the checkpoint holds the learner's last update: its last train row
        rows = pd.read_csv(run.out / "logs" / f"learner{rank}_train.csv")
        frames_saved = checkpoint.load_learner(run.out, rank)["learner"]["frames"]
        assert frames_saved == rows["frames"].iloc[-1] > 0
        made += frames_saved
    # --frames on a resume is the run's new total: not less than was made, here 6,000 more
    short = subprocess.run(_args(run.out, made, ["--resume"]), capture_output=True, text=True, timeout=JOIN)
    assert short.returncode == 2 and f"is not more than the {made:,} frames" in short.stderr
    done = subprocess.run(_args(run.out, made + 6000, ["--resume"]), capture_output=True, text=True, timeout=JOIN)
    assert done.returncode == 0, done.stderr[-2000:]
    per_update = 2 * 5  # simulators x steps: each learner may begin one more update at the end
    assert made + 6000 <= json.loads((run.out / "summary.json").read_text())["frames"] < made + 6000 + 3 * per_update
