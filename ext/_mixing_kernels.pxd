# C-level kernels shared by galasim.mixing and the event scheduler (cimport galasim._mixing_kernels).

cdef double dobrushin_dense(const double* M, Py_ssize_t n, Py_ssize_t stride) noexcept nogil
