"""galasim: simulate, train and analyse Gossip-based Actor-Learner Architectures (GALA)."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "simulate", "train"]


def __getattr__(name: str):
    # `galasim.simulate` is resolved lazily so that `import galasim` (and `galasim --help`) stays light.
    if name == "simulate":
        from galasim.sim import simulate

        return simulate
    if name == "train":  # torch is imported only when training is asked for
        from galasim.rl.train import train

        return train
    raise AttributeError(f"module 'galasim' has no attribute {name!r}")
