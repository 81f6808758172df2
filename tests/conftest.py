"""Suite-wide: one BLAS/OpenMP thread per process.

The suite runs the test process, servers and spawned training workers side by side on a
2-core machine; with two OpenMP threads each they oversubscribe the cores, and torch's
small-matrix kernels then run 10-50x slower (measured: 1.4 s vs 31 s per epoch on digits).
Set before torch is imported; spawned workers inherit it.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("CURATE_TORCH_THREADS", "1")
