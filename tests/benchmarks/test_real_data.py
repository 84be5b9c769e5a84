"""The real-data benchmark end to end in its quick mode (a few steps per model): slow, needs ../shared/data."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
ROWS = ("| wiener |", "| ndt1 |", "| poyo |", "| wmaze wiener |", "| lineartrack bayes (place fields) |",
        "recalibrate", "| smoothing |", "| mtm |")


@pytest.mark.slow
@pytest.mark.skipif(not DATA.exists(), reason="shared data folder absent")
def test_quick_run_writes_every_table(tmp_path):
    table = tmp_path / "real_data.md"
    env = {**os.environ, "SPIKEFM_REAL_DATA": str(DATA), "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "real_data.py"), "--quick", "--out", str(tmp_path / "runs"),
         "--table", str(table)], env=env, capture_output=True, text=True, timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = table.read_text()
    for row in ROWS:
        assert row in text
    assert "did not run" not in text
