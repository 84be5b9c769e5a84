"""Neuroformer's generation under the protocol: the candidate trains on its chunks, scores whole generated trials,
and faces the history GLM given the same recorded past and behaviour."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.eval.baselines import make_baseline
from spikefm.eval.bench import SyntheticSettings
from spikefm.eval.candidates import BaselineCandidate, Task
from spikefm.eval.generation_candidate import GenerationCandidate, generation_task
from spikefm.eval.metrics import BITS_PER_SPIKE
from spikefm.eval.sealed import seal

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def recording():
    return SyntheticSettings(n_trials=20, units=(10, 10)).draw(7)


def test_the_task_bins_are_one_chunk_wide() -> None:
    task = generation_task("neuroformer", window=1.0, behavior_key="hand_vel", current_window=0.04)
    assert task.metric == BITS_PER_SPIKE and task.bin_size == 0.04 and task.window_bins == 25


def test_a_generation_candidate_trains_on_its_chunks_and_refuses_other_metrics(tmp_path: Path) -> None:
    candidate = GenerationCandidate("neuroformer", generation_task("neuroformer", 1.0, "hand_vel"), max_steps=2,
                                    out_dir=tmp_path)
    assert candidate.train_window == pytest.approx(0.1)  # 50 ms past + 50 ms current chunk
    assert candidate._config(candidate.default(), seed=1).data.window == pytest.approx(0.1)
    assert candidate.key()["train_window"] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="bits/spike"):
        GenerationCandidate("neuroformer", Task("co-bps", window=1.0, bin_size=0.02), out_dir=tmp_path)


def test_generated_rates_align_with_the_recorded_counts_and_are_seeded(recording, tmp_path: Path) -> None:
    task = generation_task("neuroformer", 1.0, "hand_vel")
    candidate = GenerationCandidate("neuroformer", task, max_steps=2, sampler="random", batch_size=8,
                                    out_dir=tmp_path)
    dev, sealed = seal(recording, name="gen")
    fitted = candidate.fit(dev, candidate.default(), seed=3)
    val = candidate._scores(fitted, dev, "val")
    n_val = int(np.sum(dev.trials.columns["split"].astype(str) == "val"))
    assert val.n == n_val and val.pred.shape == val.truth.shape == (n_val * task.window_bins, recording.n_units)
    assert np.all(val.pred > 0) and np.isfinite(val.score())
    again = candidate._scores(fitted, dev, "val")
    assert np.array_equal(val.pred, again.pred)  # sampling is seeded by the training seed
    sealed.release()
    test = candidate.predict(fitted, sealed.open())
    assert test.n == int(np.sum(recording.trials.columns["split"].astype(str) == "test"))


def test_the_history_glm_reads_the_same_conditioning(recording) -> None:
    task = generation_task("neuroformer", 1.0, "hand_vel")
    baseline = BaselineCandidate(make_baseline("history GLM"), task)
    assert baseline.causal and "behaviour" in baseline.info and "50 ms bin" in baseline.info
    dev, _ = seal(recording, name="gen")
    fitted = baseline.fit(dev, baseline.default(), seed=0)
    score = baseline.validate(fitted, dev)
    assert np.isfinite(score) and score > -1.0


def test_a_generative_recipe_is_benched_by_generation(tmp_path: Path) -> None:
    recipe = (ROOT / "configs" / "neuroformer_tiny.yaml").read_text()
    small = recipe.replace("  sampler: random\n", "  sampler: random\n  synthetic:\n    n_trials: 20\n"
                           "    units_per_session: [10, 10]\n    n_sessions: 1\n")
    assert small != recipe
    (tmp_path / "neuroformer_tiny.yaml").write_text(small)
    result = CliRunner().invoke(app, ["bench", str(tmp_path / "neuroformer_tiny.yaml"), "--quick",
                                      "--budget", "1", "--seeds", "1", "--steps", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "recipe_neuroformer_tiny_quick.json").read_text())
    assert {(r["name"], r["metric"]) for r in payload["rows"]} == {("neuroformer", BITS_PER_SPIKE),
                                                                   ("history GLM", BITS_PER_SPIKE)}
