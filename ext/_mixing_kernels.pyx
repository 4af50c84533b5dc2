# cython: language_level=3
"""Hot kernels behind :mod:`galasim.mixing`.

The Dobrushin (ergodicity) coefficient of a row-stochastic matrix,

    tau_1(M) = 1/2 max_{a,b} sum_l |M_al - M_bl| = 1 - min_{a,b} sum_l min(M_al, M_bl),

is evaluated over all row pairs: O(n^3) flops, so it is a C loop without the GIL. The scheduler
cimports :func:`dobrushin_dense` to certify the products of realised gossip matrices.
"""

from libc.math cimport fabs


cdef double dobrushin_dense(const double* M, Py_ssize_t n, Py_ssize_t stride) noexcept nogil:
    """tau_1 of the n x n row-major matrix at M whose rows are `stride` doubles apart."""
    cdef Py_ssize_t a, b, l
    cdef double worst = 0.0, dist
    cdef const double* row_a
    cdef const double* row_b
    for a in range(n):
        row_a = M + a * stride
        for b in range(a + 1, n):
            row_b = M + b * stride
            dist = 0.0
            for l in range(n):
                dist += fabs(row_a[l] - row_b[l])
            if dist > worst:
                worst = dist
    return 0.5 * worst


def dobrushin(const double[:, ::1] M not None) -> float:
    """Dobrushin coefficient of a dense C-contiguous square float64 matrix (validated by the caller)."""
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"dobrushin needs a square matrix, got shape {M.shape[0]}x{M.shape[1]}")
    cdef double result
    with nogil:
        result = dobrushin_dense(&M[0, 0], M.shape[0], M.shape[1]) if M.shape[0] > 1 else 0.0
    return result
