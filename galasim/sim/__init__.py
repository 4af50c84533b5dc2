"""Virtual-time simulation of GALA gossip: :func:`simulate` and its result type."""
from galasim.sim.result import SimResult
from galasim.sim.api import simulate

__all__ = ["SimResult", "simulate"]
