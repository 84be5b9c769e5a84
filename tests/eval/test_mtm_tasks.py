"""MtM's four evaluation tasks: what each pass hides, and that each prediction comes from a pass
in which its entry was hidden."""

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.metrics import bits_per_spike
from spikefm.eval.baselines.masked import GLMTask
from spikefm.eval.mtm_tasks import TASKS, mtm_task_scores, smoothing_task_scores, task_predictions
from spikefm.eval.scoreboard import baseline_scores, split_arrays
from spikefm.models.mtm import MtM
from spikefm.models.registry import build_config, get_spec


@pytest.fixture(scope="module")
def dataset():
    return generate(SyntheticConfig(n_sessions=2, units_per_session=(12, 14), n_trials=20, regions_per_session=(2, 2),
                                    seed=5))


@pytest.fixture()
def model(dataset):
    config = build_config("mtm", "tiny")
    return MtM(config, **get_spec("mtm").sizes_from_data(dataset.recordings, config))


class _Spy:
    """Replaces predict_masked: records each pass and returns rate 2 where hidden, 1 elsewhere."""

    def __init__(self, model):
        self.calls = []
        self.model = model

    def __call__(self, batch, hide, scheme, target_regions=None):
        _, heldout, _ = self.model.unit_fields(batch)
        hidden = hide | heldout[:, None, :]
        self.calls.append((hidden[0, 0].clone(), hidden[0, :, 0].clone(), str(scheme), target_regions))
        return torch.log1p(hidden.float())


def test_every_prediction_comes_from_a_pass_that_hid_it(model, dataset, monkeypatch):
    spy = _Spy(model)
    monkeypatch.setattr(model, "predict_masked", spy)
    rec = dataset.recordings[0]
    out = task_predictions(model, rec, n_forward=10)
    assert set(out) == set(TASKS)
    for task, (rates, counts) in out.items():
        assert np.all(rates == 2.0), f"{task}: some prediction came from a pass where its entry was visible"
        assert rates.shape == counts.shape
    forward = out["forward_pred"][0]
    assert forward.shape[1] == 10 and forward.shape[2] == rec.n_units


def test_region_tasks_hide_the_right_units(model, dataset, monkeypatch):
    spy = _Spy(model)
    monkeypatch.setattr(model, "predict_masked", spy)
    rec = dataset.recordings[0]
    task_predictions(model, rec)
    labels, heldout = rec.units.region.astype(str), rec.units.heldout
    intra = [c for c in spy.calls if "INTRA" in c[2].upper()]
    inter = [c for c in spy.calls if "INTER" in c[2].upper()]
    assert len(inter) == 2  # one pass per region
    for units, _, _, regions in inter:
        region = regions[0]
        assert np.array_equal(units.numpy(), (labels == region) | heldout)
    for units, _, _, regions in intra:
        outside = labels != regions[0]
        assert units.numpy()[outside].all()  # the other regions are hidden
        assert (units.numpy() & ~outside & ~heldout).sum() <= 1  # at most one own held-in unit hidden
    neuron = [c for c in spy.calls if "NEURON" in c[2].upper()]
    assert len(neuron) == (~heldout).sum() + 1  # one pass per held-in unit, one for the held-out units
    causal = [c for c in spy.calls if "CAUSAL" in c[2].upper()]
    assert len(causal) == 1 and causal[0][1][-10:].all() and not causal[0][1][:-10].any()


def test_scores_are_pooled_and_per_neuron_bits_per_spike(model, dataset):
    rec = dataset.recordings[1]
    torch.manual_seed(0)
    scores = mtm_task_scores(model, rec)
    assert set(scores) == set(TASKS) | {f"{t} per-neuron" for t in TASKS}
    assert all(np.isfinite(v) for v in scores.values())
    torch.manual_seed(0)
    rates, counts = task_predictions(model, rec)["neuron_pred"]
    assert scores["neuron_pred"] == pytest.approx(bits_per_spike(rates, counts))


def test_needs_an_mtm_model(dataset):
    with pytest.raises(TypeError, match="MtM"):
        task_predictions(torch.nn.Linear(2, 2), dataset.recordings[0])


def test_smoothing_tasks_never_read_a_target_and_keep_to_the_task_regions(dataset, monkeypatch):
    rec = dataset.recordings[0]
    labels = np.asarray(rec.units.region).astype(str)
    calls = []
    real_predict = GLMTask.predict

    def spy(self, test, inputs, targets):
        calls.append((inputs.copy(), targets.copy()))
        return real_predict(self, test, inputs, targets)

    monkeypatch.setattr(GLMTask, "predict", spy)
    scores = smoothing_task_scores(rec)
    assert set(scores) == {"neuron_pred", "intra_region", "inter_region"}
    assert all(np.isfinite(v) for v in scores.values())
    heldout = np.asarray(rec.units.heldout, bool)
    for inputs, targets in calls:
        assert not (inputs & targets).any() and not (inputs & heldout).any()
    n_heldin = int((~heldout).sum())
    assert sum(1 for inputs, _ in calls if inputs.sum() == n_heldin - 1) >= n_heldin  # neuron_pred: one unit out
    for region in sorted(set(labels)):
        members = labels == region
        assert any((t == members).all() and (i == (~members & ~heldout)).all() for i, t in calls)  # inter-region
        intra = [i for i, t in calls if t.any() and (t <= members).all() and i.any() and (i <= members).all()]
        assert intra  # intra-region passes read their own region only


def test_smoothing_held_out_part_is_the_nlb_smoothing_baseline(dataset):
    rec = dataset.recordings[0]
    train, test = split_arrays(rec, bin_size=0.02, window=1.0)
    heldout = np.asarray(rec.units.heldout, bool)
    task = GLMTask(train.counts, heldout, 0.02)
    ours = bits_per_spike(task.predict(test.counts, ~heldout, heldout), test.heldout_counts.astype(float))
    assert ours == pytest.approx(baseline_scores(train, test)["smoothing"]["co-bps"], abs=1e-9)
