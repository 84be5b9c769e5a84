"""MtM's four tasks under the protocol: one row per task, each against its own baseline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.bench import SyntheticSettings, synthetic_suite
from spikefm.eval.cache import ResultCache
from spikefm.eval.candidates import Task
from spikefm.eval.mtm_candidate import MaskedTaskCandidate, masked_task
from spikefm.eval.protocol import Budget


def test_a_task_candidate_is_named_after_its_task_and_checks_its_metric() -> None:
    candidate = MaskedTaskCandidate("mtm", masked_task("forward_pred"), mtm_task="forward_pred")
    assert candidate.name == "mtm forward_pred" and candidate.metric == "forward_pred bps"
    assert "causal prompt" in candidate.info and candidate.key()["mtm_task"] == "forward_pred"
    with pytest.raises(ValueError, match="neuron_pred bps"):
        MaskedTaskCandidate("mtm", Task("co-bps", window=1.0, bin_size=0.02), mtm_task="neuron_pred")


def test_the_four_task_rows_run_end_to_end_each_against_its_baseline(tmp_path: Path) -> None:
    settings = SyntheticSettings(n_trials=30, units=(12, 12))
    budget = Budget(trials=1, seeds=1, max_steps=2, bootstrap=10)
    result = synthetic_suite(["mtm:tasks"], budget, tmp_path, ResultCache(tmp_path / "cache"), settings,
                             draws=(1001,), log=lambda *_: None).to_json()
    rows = {r["name"]: r for r in result["rows"]}
    tasks = ("forward_pred", "neuron_pred", "intra_region", "inter_region")
    assert {f"mtm {t}" for t in tasks} <= set(rows)
    assert all(np.isfinite(r["score"]) for r in rows.values())
    pairs = {(c["model"], c["baseline"]) for c in result["comparisons"]}
    expected = {("mtm forward_pred", "forward GLM")} | {(f"mtm {t}", f"smoothing {t}") for t in tasks[1:]}
    assert pairs == expected
