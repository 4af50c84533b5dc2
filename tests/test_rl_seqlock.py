"""The monitor's reads of the published parameters never mix two writes (galasim/rl/seqlock.py)."""
import sys
import threading
import time

import pytest

torch = pytest.importorskip("torch")
from galasim.rl import seqlock  # noqa: E402


def _torn(row: torch.Tensor) -> bool:
    # every write fills the row with one value, so a row holding two values mixes two writes
    return bool(row.min() != row.max())


def test_a_reader_never_keeps_a_row_that_a_writer_was_rewriting():
    """A writer thread rewrites row 1 almost without pause (torch releases the GIL while it copies).
    Plain copies of the row, taken in turn with the seqlock's copies, catch it mid-write, which
    shows this test can see a torn row; the seqlock's copies never do. How often a plain copy
    tears depends on the machine's scheduling, so the reads go on until plain copies have torn
    ``wanted`` times (or a minute has passed), at least 300 reads of each kind."""
    dim, wanted = 1 << 18, 5
    published, version = torch.zeros(2, dim), torch.zeros(2, dtype=torch.int64)
    stop = threading.Event()

    def writer():
        k = 0
        while not stop.is_set():
            k += 1
            seqlock.publish(published, version, 1, torch.full((dim,), float(k)))
            time.sleep(1e-4)  # a learner rests between writes (~0.1 s on Pong): readers get through

    thread = threading.Thread(target=writer)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # hand the GIL over quickly, or each read waits up to 5 ms for it
    thread.start()
    reads = plain = locked = untouched = 0
    deadline = time.perf_counter() + 60.0
    try:
        while reads < 300 or (plain < wanted and time.perf_counter() < deadline):
            reads += 1
            plain += _torn(published[[1]].clone()[0])
            rows = seqlock.read(published, version, [0, 1])
            locked += _torn(rows[1])
            untouched += bool((rows[0] == 0).all())
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    assert plain > 0, f"no plain copy of {reads} was torn: this test cannot see a torn row here"
    assert locked == 0 and untouched == reads
    assert int(version[1]) % 2 == 0 and int(version[1]) > 0


def test_a_row_left_mid_write_is_read_after_the_wait():
    """A learner that died during a write leaves its version odd: the reader does not hang."""
    published, version = torch.ones(1, 4), torch.tensor([3])
    assert seqlock.read(published, version, [0]).tolist() == [[1.0, 1.0, 1.0, 1.0]]
