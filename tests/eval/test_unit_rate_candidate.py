"""The unified model's co-smoothing under the protocol: held-out unit rates per chunk, in the chunk's bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.bench import SyntheticSettings, _models
from spikefm.eval.candidates import Task, task_arrays
from spikefm.eval.protocol import Budget
from spikefm.eval.sealed import seal
from spikefm.eval.unit_rate_candidate import UnitRateCandidate, unit_rate_task


def test_it_scores_in_its_chunks_only() -> None:
    with pytest.raises(ValueError, match="--co-bps-bin 0.05"):
        UnitRateCandidate("unified", Task("co-bps", window=1.0, bin_size=0.02))
    with pytest.raises(ValueError, match="co-bps"):
        UnitRateCandidate("unified", Task("decode R2", window=1.0, bin_size=0.05, behavior_key="hand_vel"))


def test_held_out_rates_line_up_with_the_recorded_counts(tmp_path: Path) -> None:
    rec = SyntheticSettings(n_trials=30, units=(12, 12), system="lorenz").draw(5)
    dev, _ = seal(rec, name="u")
    task = unit_rate_task("unified")
    candidate = UnitRateCandidate("unified", task, max_steps=2, batch_size=8, out_dir=tmp_path)
    assert candidate.name == "unified co-bps" and task.bin_size == 0.05
    scores = candidate._scores(candidate.fit(dev, candidate.default(), seed=1), dev, "val")
    recorded = task_arrays(task, dev, "val").heldout_counts  # [K, T, N_out]
    assert scores.pred.shape == scores.truth.shape == (recorded.shape[0] * recorded.shape[1], recorded.shape[2])
    np.testing.assert_array_equal(scores.truth, recorded.reshape(scores.truth.shape))
    assert np.all(scores.pred > 0) and np.isfinite(scores.score())


def test_binned_models_take_the_sittings_co_bps_bin() -> None:
    task = Task("co-bps", window=1.0, bin_size=0.05)
    mtm, ndt1, unified = _models(["mtm", "ndt1", "unified:co-bps"], lambda m: task,
                                 Budget(trials=1, seeds=1, max_steps=2, bootstrap=10), Path("unused"))
    assert mtm.overrides["bin_size"] == ndt1.overrides["bin_size"] == 0.05
    assert isinstance(unified, UnitRateCandidate) and unified.sampler == "trials"
