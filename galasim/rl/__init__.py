"""Reinforcement learning: GALA-A2C and A2C learners on Atari and gymnasium environments.

Lazy (PEP 562): importing :mod:`galasim.rl` costs nothing until a name is used, so ``galasim sweep``
and the simulator never import torch.
"""
from __future__ import annotations

__all__ = ["TrainConfig", "TrainResult", "train", "evaluate", "make_config"]

_WHERE = {
    "TrainConfig": "galasim.rl.config",
    "make_config": "galasim.rl.config",
    "TrainResult": "galasim.rl.train",
    "train": "galasim.rl.train",
    "evaluate": "galasim.rl.evaluate",
}


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'galasim.rl' has no attribute {name!r}")
