# C-level kernels of galasim.mixing (implementation: _mixing_kernels.pyx).

cdef double dobrushin_dense(const double* M, Py_ssize_t rows, Py_ssize_t cols,
                           Py_ssize_t stride) noexcept nogil
