"""The gossip layer: the protocol rules as data (:mod:`galasim.gossip.protocol`).

The simulator and real learners follow the same rules; this package re-exports the protocol
objects so that ``from galasim.gossip import protocol`` keeps working.
"""
from galasim.gossip.protocol import (
    ALLREDUCE,
    DEFAULT_SYNC_FREQ,
    GALA,
    PROTOCOLS,
    PUSH_SUM,
    UNBOUNDED,
    Protocol,
    parse_sync_freq,
    protocol,
)

__all__ = [
    "ALLREDUCE", "DEFAULT_SYNC_FREQ", "GALA", "PROTOCOLS", "PUSH_SUM", "UNBOUNDED",
    "Protocol", "parse_sync_freq", "protocol",
]
