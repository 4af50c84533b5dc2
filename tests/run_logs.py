"""A check of a run folder's logs, shared by the ``--mode async`` and ``--mode dist`` tests."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

# Columns of learner{r}_train.csv that add up over the whole run, across resumes.
CUMULATIVE = ["time", "mixes", "messages_sent", "messages_skipped", "wait_seconds",
              "t_env", "t_act", "t_update", "t_gossip"]


def assert_logs_go_on(run: Path, learners: int) -> None:
    """No learner's time, timers or gossip counters, and not the network log's time, ever go back:
    a resumed run continues them from its checkpoints instead of starting them again."""
    for rank in range(learners):
        train = pd.read_csv(run / "logs" / f"learner{rank}_train.csv")
        for column in CUMULATIVE:
            assert train[column].is_monotonic_increasing, (rank, column, train[column].tolist())
        episodes = pd.read_csv(run / "logs" / f"learner{rank}_episodes.csv")
        assert episodes["time"].is_monotonic_increasing, (rank, episodes["time"].tolist())
    network = pd.read_csv(run / "logs" / "network.csv")
    assert network["time"].is_monotonic_increasing, network["time"].tolist()
