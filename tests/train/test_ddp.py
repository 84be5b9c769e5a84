"""Two-process CPU DDP (Lightning, gloo) follows the same loss trajectory as one process, same global batch."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
SCRIPT = ROOT / "benchmarks" / "ddp_scaling.py"
STEPS, SESSIONS, TRIALS = 4, 2, 20
# Gradients are averaged over ranks instead of summed in one batch: only the reduction order differs.
TOLERANCE = 1e-5


def _script():
    spec = importlib.util.spec_from_file_location("ddp_scaling", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# In the default suite (the issue asks CI to run DDP): 15 s wall on a quiet 2-core machine, ~55 s under heavy load.
def test_two_process_ddp_matches_one_process(tmp_path):
    one = _script().run(1, 8, STEPS, SESSIONS, TRIALS, str(tmp_path / "one"))
    out = tmp_path / "two.json"
    # Loopback for gloo: no hostname lookup (see tests/nn/test_identity_ddp.py).
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "GLOO_SOCKET_IFNAME": "lo"}
    subprocess.run([sys.executable, str(SCRIPT), "--devices", "2", "--batch-size", "4", "--steps", str(STEPS),
                    "--sessions", str(SESSIONS), "--trials", str(TRIALS), "--out", str(out)],
                   check=True, env=env, timeout=300, cwd=tmp_path)
    two = json.loads(out.read_text())
    assert two["devices"] == 2 and two["global_batch"] == one["global_batch"] == 8
    assert len(two["losses"]) == len(one["losses"]) == STEPS
    assert two["losses"] == pytest.approx(one["losses"], rel=TOLERANCE)
    assert two["losses"][0] != two["losses"][-1]  # it trained
