"""Baselines of MtM's four tasks: they read what the task shows the model and score the entries it hides."""

from __future__ import annotations

import numpy as np
import pytest

from spikefm.eval.baselines import ForwardGLM, MaskedSmoothing, make_baseline
from spikefm.eval.baselines.masked import forward_bins
from spikefm.eval.bench import SyntheticSettings
from spikefm.eval.mtm_tasks import smoothing_task_scores
from spikefm.eval.trials import trial_arrays


@pytest.fixture(scope="module")
def arrays():
    rec = SyntheticSettings(n_trials=40, units=(14, 14)).draw(3)
    split = {s: trial_arrays(rec, split=s, bin_size=0.02, window=1.0, behavior_key=None) for s in ("train", "test")}
    return rec, split["train"], split["test"]


def test_forward_glm_reads_neither_the_predicted_bins_nor_held_out_units(arrays):
    _, train, test = arrays
    glm = ForwardGLM().fit(train, {"kernel_sd": 0.05, "alpha": 1.0})
    rates, counts = glm.predict_entries(test)
    n = forward_bins(0.02)
    assert rates.shape == counts.shape == (test.counts.shape[0], n, test.counts.shape[2])
    changed = test.counts.copy()
    changed[:, -n:] += 5  # the hidden future
    changed[..., test.heldout] += 3  # held-out units, hidden in every MtM pass
    again = glm.predict_entries(type(test)(**{**test.__dict__, "counts": changed}))[0]
    np.testing.assert_array_equal(rates, again)


def test_forward_glm_with_a_huge_penalty_predicts_each_steps_mean(arrays):
    _, train, test = arrays
    glm = ForwardGLM(alphas=(1e6,)).fit(train, {"kernel_sd": 0.05, "alpha": 1e6})
    rates = glm.predict(test)
    mean = train.counts[:, -forward_bins(0.02):].mean(0)  # [n, N]
    np.testing.assert_allclose(rates, np.broadcast_to(mean, rates.shape), rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("task", ["neuron_pred", "intra_region", "inter_region"])
def test_masked_smoothing_at_nlb_defaults_is_the_mtm_task_reference(arrays, task):
    rec, train, test = arrays
    baseline = make_baseline(f"smoothing {task}")
    assert isinstance(baseline, MaskedSmoothing) and baseline.metric == f"{task} bps"
    baseline.fit(train, {"kernel_sd": 0.05, "alpha": 0.01})
    assert baseline.score(test) == pytest.approx(smoothing_task_scores(rec)[task], abs=1e-12)
    rates, counts = baseline.predict_entries(test)
    scored = np.ones(rec.n_units, bool) if task == "neuron_pred" else test.regions != ""
    assert rates.shape == counts.shape == (*test.counts.shape[:2], int(scored.sum()))


def test_region_tasks_need_regions(arrays):
    _, train, test = arrays
    unlabeled = type(test)(**{**test.__dict__, "regions": None})
    baseline = MaskedSmoothing("inter_region").fit(train, {"kernel_sd": 0.05, "alpha": 0.01})
    with pytest.raises(ValueError, match="two regions"):
        baseline.predict_entries(unlabeled)
    with pytest.raises(ValueError, match="unknown masked task"):
        MaskedSmoothing("forward_pred")
