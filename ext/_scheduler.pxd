# Declarations of the event-driven gossip scheduler (implementation: _scheduler.pyx).
from libc.stdint cimport int64_t, uint64_t


cdef struct Event:
    double time
    int64_t seq        # push order: breaks ties deterministically
    int kind
    int64_t target     # agent, edge or message id, by kind


cdef struct EventHeap:
    Event* items
    Py_ssize_t size
    Py_ssize_t capacity
    int64_t next_seq


cdef struct Distribution:
    int code
    double p1
    double p2


cdef int heap_push(EventHeap* h, double time, int kind, int64_t target) noexcept nogil
cdef Event heap_pop(EventHeap* h) noexcept nogil
