"""Hot kernels behind :mod:`galasim.mixing`.

The Dobrushin (ergodicity) coefficient of a row-stochastic matrix,

    tau_1(M) = 1/2 max_{a,b} sum_l |M_al - M_bl| = 1 - min_{a,b} sum_l min(M_al, M_bl),

is evaluated over all row pairs: O(rows^2 cols) flops, so it is a C loop without the GIL. It is
defined for any row-stochastic matrix, square or not: the simulator's certificate applies it to
the live rows of the products of realised gossip maps.
"""

from libc.math cimport fabs

# Rows a are taken in tiles of _ROW_TILE so that each row b, once loaded, is compared with a whole
# tile while it sits in L1: the matrix is streamed n / _ROW_TILE times instead of n times.
cdef enum:
    _ROW_TILE = 16


cdef inline double _l1_distance(const double* x, const double* y, Py_ssize_t n) noexcept nogil:
    """sum_l |x_l - y_l| with four partial sums: independent add chains the compiler can vectorise."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef Py_ssize_t l = 0
    while l + 4 <= n:
        s0 += fabs(x[l] - y[l])
        s1 += fabs(x[l + 1] - y[l + 1])
        s2 += fabs(x[l + 2] - y[l + 2])
        s3 += fabs(x[l + 3] - y[l + 3])
        l += 4
    while l < n:
        s0 += fabs(x[l] - y[l])
        l += 1
    return (s0 + s1) + (s2 + s3)


cdef double dobrushin_dense(const double* M, Py_ssize_t rows, Py_ssize_t cols,
                           Py_ssize_t stride) noexcept nogil:
    """tau_1 of the rows x cols row-major matrix at M whose rows are `stride` doubles apart."""
    cdef Py_ssize_t a0 = 0, a, a_end, b
    cdef double worst = 0.0, dist
    cdef const double* row_b
    while a0 < rows:
        a_end = min(a0 + _ROW_TILE, rows)
        for b in range(a0 + 1, rows):
            row_b = M + b * stride
            for a in range(a0, min(a_end, b)):
                dist = _l1_distance(M + a * stride, row_b, cols)
                if dist > worst:
                    worst = dist
        a0 += _ROW_TILE
    return 0.5 * worst


def dobrushin(const double[:, ::1] M not None) -> float:
    """Dobrushin coefficient of the rows of a C-contiguous float64 matrix (validated by the caller)."""
    cdef double result
    with nogil:
        result = dobrushin_dense(&M[0, 0], M.shape[0], M.shape[1], M.shape[1]) if M.shape[0] > 1 else 0.0
    return result
