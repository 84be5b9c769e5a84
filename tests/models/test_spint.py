"""SPINT: permutation invariance, gradient-free calibration, cross-fitted in-batch identities."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spikefm.eval.evaluate import predict
from spikefm.models.registry import build_config, get_spec
from spikefm.models.spint import SPINT, calibration_counts
from spikefm.tokenize.base import collate


@pytest.fixture(scope="module")
def setup(small_dataset):
    torch.manual_seed(0)
    spec = get_spec("spint")
    config = build_config("spint", "tiny")
    model = spec.model_cls(config, **spec.sizes_from_data(small_dataset.recordings, config)).eval()
    return spec, config, model, spec.make_tokenizer(config)


def _windows(tokenizer, rec, rows):
    return [tokenizer(rec.window(t0, t0 + 1.0)) for t0 in rec.trials.start[rows]]


def _permuted(rec, seed=0):
    """Same session, units shuffled and renamed, session renamed: only the spikes stay."""
    perm = np.random.default_rng(seed).permutation(rec.n_units)
    shuffled = rec.select_units(perm)
    units = replace(shuffled.units, ids=np.array([f"x{i}" for i in range(rec.n_units)]))
    return replace(shuffled, units=units, session="renamed"), perm


def test_zero_shot_output_is_invariant_to_permuting_and_renaming_units(setup, small_dataset):
    spec, config, model, tokenizer = setup
    rec = small_dataset.recordings[1]
    calib = np.flatnonzero(rec.trials.columns["split"] == "train")[:6].tolist()
    other, _ = _permuted(rec)
    model.calibrate(rec, calib)
    model.calibrate(other, calib)
    a = predict(model, tokenizer, rec, split="test")
    b = predict(model, tokenizer, other, split="test")
    assert a.behavior.shape == b.behavior.shape and a.behavior.std() > 0
    np.testing.assert_allclose(a.behavior, b.behavior, atol=1e-5)


def test_calibration_is_gradient_free_and_identities_are_equivariant(setup, small_dataset):
    _, config, model, _ = setup
    rec = small_dataset.recordings[0]
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    identities = model.calibrate(rec, [0, 1, 2])
    assert identities.shape == (rec.n_units, config.dim) and not identities.requires_grad
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
    other, perm = _permuted(rec)
    torch.testing.assert_close(model.calibrate(other, [0, 1, 2]), identities[perm])


def test_in_batch_identity_pools_other_windows_exactly_like_the_idencoder(setup, small_dataset):
    _, config, model, tokenizer = setup
    rec = small_dataset.recordings[0]
    model.forget()
    batch = collate(_windows(tokenizer, rec, range(5)))
    counts = batch.values.float()  # [B, U, T]

    def encode(rows):
        with torch.no_grad():
            return model.id_encoder(counts[rows].permute(1, 0, 2)[None])[0]  # pools those windows

    model.train()  # training: two folds, windows 0, 2, 4 and 1, 3, each calibrated on the other
    identity = model.identities(batch).detach()  # [B, U, D]
    model.eval()
    torch.testing.assert_close(identity[0], encode([1, 3]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(identity[4], encode([1, 3]), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(identity[3], encode([0, 2, 4]), rtol=1e-5, atol=1e-5)
    identity = model.identities(batch).detach()  # evaluation: leave-one-out
    torch.testing.assert_close(identity[2], encode([0, 1, 3, 4]), rtol=1e-5, atol=1e-5)


def test_a_window_identity_never_depends_on_its_own_activity(setup, small_dataset):
    _, _, model, tokenizer = setup
    rec = small_dataset.recordings[0]
    model.forget()
    windows = _windows(tokenizer, rec, range(4))
    batch = collate(windows)
    changed = collate([replace(windows[0], values=windows[0].values * 0 + 3)] + windows[1:])
    for training in (True, False):
        model.train(training)
        torch.testing.assert_close(model.identities(batch)[0], model.identities(changed)[0])
    model.eval()
    alone = collate(windows[:1])  # no other window of the session: the empty-calibration identity
    with torch.no_grad():
        empty = model.id_encoder.psi(torch.zeros(1, model.config.id_hidden))
    torch.testing.assert_close(model.identities(alone)[0], empty.expand(rec.n_units, -1))


def test_registered_calibration_replaces_in_batch_identities_and_is_saved(setup, small_dataset):
    spec, config, model, tokenizer = setup
    rec = small_dataset.recordings[0]
    model.forget()
    batch = collate(_windows(tokenizer, rec, [10, 11]))
    in_batch = model(batch)["behavior"]
    model.calibrate(rec, [0, 1, 2, 3])
    registered = model(batch)["behavior"]
    assert not torch.allclose(in_batch, registered)
    fresh = SPINT(config, behavior_dim=model.behavior_dim).eval()
    fresh.load_state_dict(model.state_dict())
    assert fresh.calibrated_sessions == [rec.session]
    torch.testing.assert_close(fresh(batch)["behavior"], registered)


def test_channel_dropout_hides_units_in_training_only(setup):
    _, config, model, _ = setup
    units = torch.ones(64, 20, dtype=torch.bool)
    units[:, 15:] = False
    torch.manual_seed(1)
    keep = model._channel_dropout(units)
    assert bool((keep <= units).all()) and bool(keep.any(1).all())
    fractions = 1 - keep[:, :15].float().mean(1)
    assert 0 < float(fractions.mean()) < config.channel_dropout


def test_clear_errors(setup, small_dataset):
    spec, config, model, _ = setup
    rec = small_dataset.recordings[0]
    short = spec.make_tokenizer(config)(rec.window(0.0, 0.5))
    with pytest.raises(ValueError, match="windows of 1.0 s"):
        model(collate([short]))
    model.calibrate(rec, [0])
    renamed, _ = _permuted(rec)
    renamed = replace(renamed, session=rec.session)  # same session id, units the calibration never saw
    batch = collate([spec.make_tokenizer(config)(renamed.window(0.0, 1.0))])
    with pytest.raises(KeyError, match="not among the calibrated units"):
        model(batch)
    with pytest.raises(IndexError):
        calibration_counts(rec, [10_000], bin_size=0.02, window=1.0)
    with pytest.raises(ValueError, match="channel_dropout"):
        build_config("spint", "tiny", channel_dropout=1.5)


def test_eval_scores_do_not_depend_on_batch_size(setup, small_dataset):
    """`spikefm eval` calibrates on a fixed set of the session's train trials, so a test window's decoding no
    longer depends on which other windows share its batch (it did with in-batch calibration)."""
    from spikefm.eval.evaluate import calibration_trials, score

    spec, config, model, tokenizer = setup
    rec = small_dataset.recordings[0]
    model.forget()
    one = predict(model, tokenizer, rec, split="test", batch_size=1)
    many = predict(model, tokenizer, rec, split="test", batch_size=64)
    np.testing.assert_allclose(one.behavior, many.behavior, atol=1e-5)
    assert score(one) == pytest.approx(score(many), abs=1e-6)
    assert model.calibrated_sessions == []  # predict leaves the model as it found it
    rows = calibration_trials(rec, config.calibration_trials)
    split = rec.trials.columns["split"].astype(str)
    assert len(rows) == config.calibration_trials and set(split[rows]) == {"train"}
    model.calibrate(rec, rows)  # the same as calibrating by hand on those trials
    np.testing.assert_allclose(predict(model, tokenizer, rec, split="test", batch_size=7).behavior, one.behavior,
                               atol=1e-5)
    model.forget()


def test_eval_refuses_calibration_on_test_trials(setup, small_dataset):
    from spikefm.data.recording import DataError

    _, _, model, tokenizer = setup
    rec = small_dataset.recordings[0]
    model.forget()
    test_rows = np.flatnonzero(rec.trials.columns["split"].astype(str) == "test")[:2].tolist()
    with pytest.raises(DataError, match="include test trials"):
        predict(model, tokenizer, rec, split="test", calibration=test_rows)
    assert model.calibrated_sessions == []
