"""`spikefm bench --data FILE` on a trial-structured file without behaviour: co-smoothing under the protocol."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.data.recording import Intervals
from spikefm.data.store import write_recording
from spikefm.eval.bench import SyntheticSettings, file_suite
from spikefm.eval.cache import ResultCache
from spikefm.eval.protocol import Budget


@pytest.fixture()
def test_only_file(tmp_path: Path) -> Path:
    """Like NLB's test-phase files: no behaviour, no held-out units, every trial labelled "test"."""
    rec = SyntheticSettings(n_trials=30, units=(16, 16)).draw(0)
    trials = Intervals(rec.trials.start, rec.trials.end, {"split": np.full(len(rec.trials), "test")})
    rec = replace(rec, behavior={}, trials=trials, units=replace(rec.units, heldout=np.zeros(rec.n_units, bool)))
    return write_recording(rec, tmp_path / "maze.h5")


def test_bench_scores_co_smoothing_on_a_file_without_behaviour(test_only_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["bench", "--data", str(test_only_file), "--quick", "--models", "",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "out" / "file_maze_quick.json").read_text())
    assert {row["name"] for row in payload["rows"]} == {"smoothing", "smoothing causal"}
    assert {row["metric"] for row in payload["rows"]} == {"co-bps"}
    data = payload["rows"][0]["data"][0]
    assert data["split_sizes"] == {"test": 6, "train": 21, "val": 3}
    assert "4 of 16 units held out (seed 0)" in data["description"]
    assert all(np.isfinite(row["score"]) for row in payload["rows"])


def test_co_smoothing_models_read_the_task_bins(test_only_file: Path, tmp_path: Path) -> None:
    """STNDT's fixed width follows the trials (1 s of 20 ms bins = 50 bins), so it trains on this file."""
    budget = Budget.quick(trials=1, seeds=1, max_steps=2)
    result = file_suite(test_only_file, ["stndt"], budget, tmp_path, ResultCache(None), task="co-bps",
                        bin_size=0.025, log=lambda *_: None)
    stndt = next(row for row in result.rows if row["name"] == "stndt")
    assert stndt["search"]["space"]["overrides"] == {"bin_size": 0.025, "n_bins": 40}
    assert np.isfinite(stndt["score"])


def test_unknown_task_is_an_error(test_only_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="task must be"):
        file_suite(test_only_file, [], Budget.quick(), tmp_path, ResultCache(None), task="psth")


def test_unified_co_smoothing_on_a_file_without_behaviour(test_only_file: Path, tmp_path: Path) -> None:
    """The unified model trains on its masking schemes alone there (it failed: no 'hand_vel' to tokenize), and
    ``--co-bps-bin`` sets the file's co-bps bins (its 50 ms chunk; the file suite ignored the option)."""
    result = CliRunner().invoke(app, ["bench", "--data", str(test_only_file), "--models", "unified:co-bps",
                                      "--co-bps-bin", "0.05", "--budget", "1", "--seeds", "1", "--steps", "2",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "out" / "file_maze.json").read_text())["rows"]
    unified = next(row for row in rows if row["name"] == "unified co-bps")
    assert np.isfinite(unified["score"])
    smoothing = next(row for row in rows if row["name"] == "smoothing causal")
    assert "50 ms bins" in smoothing["information"]


def test_forward_prediction_is_scored_on_a_file_beside_co_smoothing(test_only_file: Path, tmp_path: Path) -> None:
    """``mtm:forward_pred`` on a file: the last 200 ms of each trial window, the file's bins, against the forward GLM
    (the file suite gave every row the co-bps task, and the row refused it)."""
    budget = Budget.quick(trials=1, seeds=1, max_steps=2)
    result = file_suite(test_only_file, ["mtm", "mtm:forward_pred"], budget, tmp_path, ResultCache(None),
                        task="co-bps", bin_size=0.05, log=lambda *_: None)
    metric = {row["name"]: row["metric"] for row in result.rows}
    assert metric == {"smoothing": "co-bps", "smoothing causal": "co-bps", "mtm": "co-bps",
                      "forward GLM": "forward_pred bps", "mtm forward_pred": "forward_pred bps"}
    forward = next(row for row in result.rows if row["name"] == "mtm forward_pred")
    assert forward["search"]["space"]["task"]["bin_size"] == 0.05 and np.isfinite(forward["score"])
    assert {(c["model"], c["baseline"]) for c in result.comparisons if c["metric"] == "forward_pred bps"} == {
        ("mtm forward_pred", "forward GLM")}


def test_ndt1_forward_prediction_hides_and_scores_the_last_200_ms(test_only_file: Path, tmp_path: Path) -> None:
    """``ndt1:forward_pred``: NDT1 trained with each window's last 200 ms zeroed in its input (NLB's forward setup),
    scored on every unit's counts there beside MtM's forward row, against the same forward GLM."""
    budget = Budget.quick(trials=1, seeds=1, max_steps=2)
    result = file_suite(test_only_file, ["ndt1:forward_pred", "mtm:forward_pred"], budget, tmp_path,
                        ResultCache(None), task="co-bps", bin_size=0.05, log=lambda *_: None)
    ndt1 = next(row for row in result.rows if row["name"] == "ndt1 forward_pred")
    assert ndt1["metric"] == "forward_pred bps" and np.isfinite(ndt1["score"])
    assert ndt1["search"]["space"]["overrides"]["forward_bins"] == 4
    assert {("ndt1 forward_pred", "forward GLM"), ("mtm forward_pred", "forward GLM")} <= {
        (c["model"], c["baseline"]) for c in result.comparisons}
