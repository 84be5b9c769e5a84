"""NEDS's encoding under the protocol: counts from the behaviour alone, against a behaviour GLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.baselines import BehaviorGLM, make_baseline
from spikefm.eval.baselines.behavior_glm import behavior_features
from spikefm.eval.bench import ENCODING, SyntheticSettings, _baselines, _models
from spikefm.eval.candidates import Task, task_arrays
from spikefm.eval.encoding_candidate import EncodingCandidate
from spikefm.eval.protocol import Budget
from spikefm.eval.sealed import seal

ENCODE = Task("enc bps", window=1.0, bin_size=0.02, behavior_key="hand_vel")


@pytest.fixture(scope="module")
def dev():
    return seal(SyntheticSettings(n_trials=60, units=(20, 20)).draw(5), name="e")[0]


def test_behaviour_features_hold_the_behaviour_either_side_and_no_spikes() -> None:
    behaviour = np.arange(5.0).reshape(1, 5, 1)
    np.testing.assert_array_equal(behavior_features(behaviour, 1)[2], [2.0, 1.0, 3.0])  # t, t-1, t+1
    glm = BehaviorGLM(window_bins=50)
    assert max(glm.half_widths) == 49  # every bin can read the whole 1 s window, as NEDS does


def test_the_glm_learns_tuning_from_behaviour(dev) -> None:
    train, val = task_arrays(ENCODE, dev, "train"), task_arrays(ENCODE, dev, "val")
    glm = make_baseline("behaviour GLM").fit(train, {"half_width": 8, "alpha": 1e-2})
    assert glm.predict(val).shape == val.counts.shape
    assert glm.score(val) > 0  # velocity-tuned units: the behaviour predicts their counts better than their means


def test_neds_encodes_with_every_spike_hidden(dev, tmp_path: Path) -> None:
    row = EncodingCandidate("neds", ENCODE, max_steps=2, batch_size=8, out_dir=tmp_path)
    assert row.name == "neds encoding" and not row.causal
    fitted = row.fit(dev, row.default(), seed=0)
    scores = row._scores(fitted, dev, "val")
    counts = task_arrays(ENCODE, dev, "val").counts
    np.testing.assert_array_equal(scores.truth, counts.reshape(scores.truth.shape))
    assert np.isfinite(scores.score())
    # hiding every spike means the spikes cannot matter: shuffling them leaves the prediction unchanged
    from dataclasses import replace

    rng = np.random.default_rng(0)
    shuffled = replace(dev, spikes=replace(dev.spikes, units=rng.permutation(dev.spikes.units)))
    np.testing.assert_allclose(row._scores(fitted, shuffled, "val").pred, scores.pred, rtol=1e-5, atol=1e-7)


def test_bench_rows_and_baselines() -> None:
    with pytest.raises(ValueError, match="ndt3 has no encoding mode"):
        EncodingCandidate("ndt3", ENCODE)
    (base,) = _baselines(ENCODE, [ENCODING])
    assert base.name == "behaviour GLM" and max(base.baseline.half_widths) == 49
    (row,) = _models([ENCODING], lambda m: ENCODE, Budget(trials=1, seeds=1, max_steps=2, bootstrap=10), Path("x"))
    assert isinstance(row, EncodingCandidate)
