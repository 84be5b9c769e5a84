"""Test-wide settings: tiny CPU models and small BLAS problems run fastest on one thread.

Multi-threaded OpenBLAS busy-waits; on a loaded 2-core CI machine that made a 3,500 x 290 SVD
40x slower (6.6 s vs 0.16 s). The variables must be set before numpy is first imported.
"""

import os

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import torch  # noqa: E402

torch.set_num_threads(1)


# ------------------------------------------------------------------ real data
# The one place tests find the real recordings: ../shared/data beside the repository (see its README),
# or SPIKEFM_REAL_DATA (as benchmarks/real_data.py reads it). Tests skip cleanly when a file is absent.
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPIKEFM_REAL_DATA", REPO_ROOT.parent / "shared" / "data"))


def shared_files() -> list[str]:
    """Every recording file under the shared data folder, relative to it (empty when absent)."""
    if not SHARED_DATA.is_dir():
        return []
    return sorted(
        str(p.relative_to(SHARED_DATA))
        for p in SHARED_DATA.rglob("*")
        if p.is_file() and p.name not in ("README.md", "SHA256SUMS")
    )


@pytest.fixture(scope="session")
def shared_data():
    """``shared_data("nlb/x.nwb")``: the path of a real recording, or a skip when it is not there."""

    def get(relative: str = "") -> Path:
        path = SHARED_DATA / relative
        if not path.exists():
            pytest.skip(f"real data {path} absent (see ../shared/data/README.md)")
        return path

    return get


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test taking ``shared_file`` runs once per shared recording (one skipped case when none)."""
    if "shared_file" in metafunc.fixturenames:
        files = shared_files()
        params = files or [pytest.param(None, marks=pytest.mark.skip(reason=f"real data {SHARED_DATA} absent"))]
        metafunc.parametrize("shared_file", params)
