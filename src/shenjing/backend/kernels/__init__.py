"""numba kernels, one module per family; reached only through :func:`shenjing.backend.jit.kernels`,
which imports a module (and numba) the first time the compiled path needs it."""

JIT_OPTIONS = {"nogil": True, "cache": True, "error_model": "numpy"}
"""How every kernel is compiled: without the GIL; cached on disk; with NumPy's error model (a float
division by zero gives inf or nan instead of raising, so the loops have no per-element check and
vectorise). Serial, not ``parallel=True``: the kernels run between BLAS calls, and numba's thread
pool and OpenBLAS's spinning threads fought over the cores (mnist_cnn: 790 ms a step against 101 ms
serial on 2 cores), so BLAS keeps the cores and the kernels win by doing one pass instead of many."""
