"""An independent re-implementation of the paper's gossip buffer, to test ``protocol="gala"`` against.

It follows facebookresearch/gala, ``gala/gpu_gossip_buffer.py``, on the paper's topology (the
directed ring, agent r sends to r + 1): every agent owns one broadcast buffer with a *read* event
per out-peer (set at start) and a *write* event per out-peer;

* ``write_message``: if the out-peer has read the last message (read event set), clear the read
  event, copy the parameters divided by (peers + 1) into the buffer and set the write event;
  otherwise return without writing;
* ``aggregate_message``: if the in-peer's write event is set, or the staleness counter has reached
  ``sync_freq``, wait for the write event, clear it, reset the counter, divide the parameters by
  (peers + 1), add the message and set the in-peer's read event; otherwise increment the counter.

Each agent is a coroutine: compute for a while, ``x += delta`` (the optimizer step), then
``write_message`` and ``aggregate_message``, as the paper's learners call them. The only things
taken from galasim are the conventions of a simulated run: the random draws (compute time of the
k-th update, delay of the m-th message on an edge, from galasim.sim.rng), that a written message
becomes visible (its write event is set) after that delay, the two-camp updates, and that the run
ends once every agent has done ``iterations`` updates and the events of that instant are processed.
It shares no code with galasim's engines.
"""
from __future__ import annotations

import heapq
import itertools

import numpy as np

from galasim.sim import rng
from galasim.sim.models import CONSTANT, EXPONENTIAL


def _draw(code: int, mean: float, key: int, counter: int) -> float:
    return rng.sample(code, mean, 0.0, key, counter)


class PaperRing:
    def __init__(self, n: int, iterations: int, sync_freq: int, seed: int, lr: float = 0.1, dim: int = 2,
                 compute: tuple[int, float] = (EXPONENTIAL, 1.0), delay: tuple[int, float] = (EXPONENTIAL, 1.0)):
        self.n, self.iterations, self.sync_freq = n, iterations, sync_freq
        self.peers = 1
        self.x = np.zeros((n, dim))
        self.step = np.zeros((n, dim))
        self.step[:, 0] = [lr if r < (n + 1) // 2 else -lr for r in range(n)]  # two-camp, L = 1
        self.buffer = np.zeros((n, dim))
        self.read_event = [True] * n      # out-peer r+1 has read r's last message
        self.write_event = [False] * n    # r's message is visible to r+1
        self.sync_list = [0] * n
        self.updates = [0] * n
        self.messages = [0] * n           # messages written by r (the delay draw counter)
        self.compute, self.delay = compute, delay
        self.compute_keys = [rng.stream_key(seed, rng.COMPUTE, r) for r in range(n)]
        # galasim numbers edges by receiver: the edge r -> r+1 has id r+1 (mod n)
        self.delay_keys = [rng.stream_key(seed, rng.DELAY, (r + 1) % n) for r in range(n)]
        self.queue: list = []
        self.counter = itertools.count()
        self.waiting: dict[int, int] = {}  # in-peer whose write event an agent waits for -> agent
        self.log: list[tuple[float, str, int, int]] = []
        self.now = 0.0

    # ------------------------------------------------------------------ the paper's two calls

    def write_message(self, r: int) -> None:
        if not self.read_event[r]:
            return
        self.read_event[r] = False
        self.buffer[r] = self.x[r] / (self.peers + 1)
        self.log.append((self.now, "write", r, (r + 1) % self.n))
        delay = _draw(*self.delay, self.delay_keys[r], self.messages[r])
        self.messages[r] += 1
        self._at(self.now + delay, ("visible", r))

    def aggregate_message(self, r: int):
        """A generator: yields ("wait", j) while blocked on in-peer j's write event."""
        j = (r - 1) % self.n
        if self.write_event[j] or self.sync_list[r] >= self.sync_freq:
            while not self.write_event[j]:
                yield ("wait", j)
            self.write_event[j] = False
            self.sync_list[r] = 0
        else:
            self.sync_list[r] += 1
            return
        self.x[r] = self.x[r] / (self.peers + 1) + self.buffer[j]
        self.log.append((self.now, "mix", r, -1))
        self.read_event[j] = True

    # ------------------------------------------------------------------ learners and the clock

    def learner(self, r: int):
        for k in itertools.count():
            yield ("sleep", _draw(*self.compute, self.compute_keys[r], k))
            self.x[r] += self.step[r]
            self.updates[r] += 1
            self.log.append((self.now, "update", r, -1))
            self.write_message(r)
            yield from self.aggregate_message(r)

    def _at(self, time: float, what) -> None:
        heapq.heappush(self.queue, (time, next(self.counter), what))

    def _advance(self, r: int, process) -> None:
        request = next(process)
        if request[0] == "sleep":
            self._at(self.now + request[1], ("resume", r, process))
        else:
            self.waiting[request[1]] = (r, process)

    def run(self) -> "PaperRing":
        for r in range(self.n):
            self._advance(r, self.learner(r))
        done_at = None
        while self.queue:
            if done_at is not None and self.queue[0][0] != done_at:
                break
            self.now, _, what = heapq.heappop(self.queue)
            if what[0] == "resume":
                self._advance(what[1], what[2])
            else:
                j = what[1]
                self.write_event[j] = True
                self.log.append((self.now, "arrive", (j + 1) % self.n, (j + 1) % self.n))
                if j in self.waiting:
                    self._advance(*self.waiting.pop(j))
            if done_at is None and min(self.updates) >= self.iterations:
                done_at = self.now
        return self


__all__ = ["PaperRing", "CONSTANT", "EXPONENTIAL"]
