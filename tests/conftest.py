"""Test-wide settings: tiny CPU models and small BLAS problems run fastest on one thread.

Multi-threaded OpenBLAS busy-waits; on a loaded 2-core CI machine that made a 3,500 x 290 SVD
40x slower (6.6 s vs 0.16 s). The variables must be set before numpy is first imported.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import torch  # noqa: E402

torch.set_num_threads(1)
