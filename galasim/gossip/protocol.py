"""The gossip protocols: plain data that the simulator (and real learners) follow.

``gala`` is exactly the protocol of the paper's code (facebookresearch/gala,
``gala/gpu_gossip_buffer.py``: ``write_message`` and ``aggregate_message``). Agent *i*, after each
local update ``x_i <- x_i + delta_i``:

1. **Non-blocking send.** If every live out-peer has consumed *i*'s previous message, write ``x_i``
   into the message buffer of each live out-peer; otherwise skip the write, on every edge (an
   unread message is never overwritten).
2. **Non-blocking receive.** If every live in-peer has a fresh (unread) message, or *i* has gone
   ``sync_freq`` iterations without mixing, mix ``x_i <- (x_i + sum_j msg_j) / (m + 1)`` over the
   ``m`` fresh messages (blocking for them in the second case), mark them read and reset the
   staleness counter; otherwise increment the counter.

The receiver applies the uniform weight ``1/(m+1)``: on GALA's regular graphs this is the paper's
``x/(p+1)`` sender scaling, and on irregular graphs it keeps the mix row-stochastic (pull form).
There are no push-sum weights, so under delays the network average is *not* preserved. The
reference protocol has no other rule: a blocked agent does not write, and on multi-peer graphs
with a finite ``sync_freq`` it can deadlock. The simulator then stops the run and reports the
agents that wait for one another (see ``docs/simulation.md``).

``gala-resend`` is **galasim's extension**, not the paper's protocol: after each update the agent
writes on every live out-edge whose buffer is free (instead of all or none), an edge whose write
was skipped, or whose message was dropped, is *owed*, and a blocked agent writes its current
parameters on each owed edge as soon as that edge's buffer frees. On a static graph this cannot
deadlock (proof in ``docs/simulation.md``).

Failure model of the simulator (also galasim's, the paper has no faults): a crashed agent, or a
removed link, is no longer waited for by receivers or counted by senders' "all consumed" check.

With a time-varying schedule an agent cannot know which peers address it at a given iteration, so
it mixes every fresh message it holds, and a blocking receive waits for at least one. These
combinations can deadlock under either variant; the simulator detects and reports it.

Comparison protocols: ``allreduce`` (synchronous exact averaging; every round waits for the slowest
agent), ``sync-gossip`` (``gala`` with ``sync_freq=0``: always wait, D-PSGD style) and ``push-sum``
(stochastic gradient push: column-stochastic shares ``1/(p+1)`` of ``(x, w)`` with a weight scalar,
average preserving, never blocking; the de-biased parameters are ``z = x / w``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# Engine codes.
GALA, PUSH_SUM, ALLREDUCE = range(3)

PROTOCOLS = ("gala", "gala-resend", "sync-gossip", "allreduce", "push-sum")
DEFAULT_SYNC_FREQ = 4
UNBOUNDED = math.inf


@dataclass(frozen=True)
class Protocol:
    """A gossip protocol: ``name`` in :data:`PROTOCOLS` and GALA's staleness bound ``sync_freq``.

    ``sync_freq`` is the number of consecutive iterations an agent may skip mixing before it
    blocks for its in-peers' messages; ``math.inf`` means never block (unbounded staleness).
    It only matters for ``gala`` and ``gala-resend`` (``sync-gossip`` is ``gala`` with
    ``sync_freq=0``).

    Examples
    --------
    >>> protocol("gala", sync_freq=2)
    Protocol(name='gala', sync_freq=2)
    >>> protocol("sync-gossip").sync_freq
    0
    """

    name: str
    sync_freq: float = DEFAULT_SYNC_FREQ

    @property
    def code(self) -> int:
        return {"allreduce": ALLREDUCE, "push-sum": PUSH_SUM}.get(self.name, GALA)

    @property
    def resend(self) -> bool:
        """galasim's deadlock-free extension (``gala-resend``), not the paper's protocol."""
        return self.name == "gala-resend"

    @property
    def staleness_bounded(self) -> bool:
        return self.code != GALA or math.isfinite(self.sync_freq)


def parse_sync_freq(value: object) -> float:
    """``sync_freq`` as an int >= 0, or ``math.inf`` for ``inf``/``none``/``unbounded``."""
    error = ValueError(f"sync_freq must be an integer >= 0 or 'inf', got {value!r}")  # names what was given
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("inf", "none", "unbounded", "infinity"):
            return UNBOUNDED
        try:
            value = float(text)
        except ValueError:
            raise error from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error
    if math.isnan(value) or value < 0 or (math.isfinite(value) and value != int(value)):
        raise error
    return UNBOUNDED if math.isinf(value) else int(value)


def protocol(name: str | Protocol, sync_freq: object = None) -> Protocol:
    """Build a :class:`Protocol` from its name (``sync_freq=None`` keeps the protocol's default)."""
    if isinstance(name, Protocol):
        return name if sync_freq is None else Protocol(name.name, parse_sync_freq(sync_freq))
    key = str(name).strip().lower()
    if key not in PROTOCOLS:
        raise ValueError(f"unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
    if key == "sync-gossip":
        if sync_freq is not None and parse_sync_freq(sync_freq) != 0:
            raise ValueError(f"sync-gossip always waits (sync_freq=0); got sync_freq={sync_freq!r}")
        return Protocol(key, 0)
    return Protocol(key, DEFAULT_SYNC_FREQ if sync_freq is None else parse_sync_freq(sync_freq))
