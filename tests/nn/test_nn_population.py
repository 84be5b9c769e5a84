"""Population frames: loadings on a session's top principal components, read through one fixed frame."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.recording import SpikeTrains
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.nn.population import PopulationFrames, population_loadings, recording_frame


def _latent_counts(rng, n=400, units=12, k=2):
    """Poisson counts driven by ``k`` shared latents: units load on them with known weights."""
    latents = rng.normal(size=(n, k))
    weights = rng.normal(size=(k, units))
    return rng.poisson(np.exp(0.5 * latents @ weights + 1.0)), weights


def test_loadings_recover_the_units_coupling_to_shared_latents():
    counts, weights = _latent_counts(np.random.default_rng(0))
    loadings = population_loadings(counts, 2)
    # the top-2 loadings span the units' weights on the 2 latents: regress one on the other
    fit = loadings @ np.linalg.lstsq(loadings, weights.T, rcond=None)[0]
    assert np.corrcoef(fit.ravel(), weights.T.ravel())[0, 1] > 0.95
    assert loadings.shape == (12, 2) and loadings.dtype == np.float32
    assert np.all(np.abs(loadings) <= 1 + 1e-5)  # correlations with each component's score


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_loadings_follow_a_permutation_of_units_and_ignore_their_scale(seed):
    rng = np.random.default_rng(seed)
    counts, _ = _latent_counts(rng, n=200, units=8)
    perm = rng.permutation(8)
    base = population_loadings(counts, 3)
    np.testing.assert_allclose(population_loadings(counts[:, perm] * 3.0 + 1.0, 3), base[perm], atol=1e-4)


def test_sign_convention_and_degenerate_inputs():
    counts, _ = _latent_counts(np.random.default_rng(1))
    loadings = population_loadings(counts, 3)
    assert np.all((loadings.astype(np.float64) ** 3).sum(0) >= 0)
    np.testing.assert_allclose(population_loadings(-counts, 3), loadings, atol=1e-5)  # the sign is fixed
    silent = np.c_[counts, np.zeros(len(counts))]  # a unit that never fires gets zero loadings
    assert np.all(population_loadings(silent, 3)[-1] == 0)
    wide = population_loadings(counts[:3], 5)  # more components than samples: the extra ones are zero
    assert wide.shape == (12, 5) and np.all(wide[:, 3:] == 0)
    with pytest.raises(ValueError, match="N >= 2"):
        population_loadings(counts[:1], 2)
    with pytest.raises(ValueError, match="k must be"):
        population_loadings(counts, 0)


def test_a_recording_frame_reads_only_train_trials():
    rec = generate(SyntheticConfig(n_sessions=1, n_trials=20, units_per_session=(10, 10), seed=3)).recordings[0]
    frame = recording_frame(rec, 3, 0.05)
    split = rec.trials.columns["split"].astype(str)
    held = [(s, e) for s, e, name in zip(rec.trials.start, rec.trials.end, split) if name != "train"]
    inside = np.zeros(rec.spikes.times.size, bool)
    for s, e in held:
        inside |= (rec.spikes.times >= s) & (rec.spikes.times < e)
    without = replace(rec, spikes=SpikeTrains(rec.spikes.times[~inside], rec.spikes.units[~inside]))
    np.testing.assert_array_equal(recording_frame(without, 3, 0.05), frame)  # val / test spikes never read
    windows = recording_frame(rec, 3, 0.05, starts=rec.trials.start[:4], window=1.0)
    assert windows.shape == (10, 3) and not np.array_equal(windows, frame)


def test_frames_keep_training_sessions_and_travel_in_the_state_dict():
    frames = PopulationFrames(2)
    frames.register("a", ["a/0", "a/1"], np.array([[1.0, 0.0], [0.0, 1.0]]), permanent=True)
    frames.register("b", ["b/0"], np.array([[0.5, 0.5]]))
    rows = frames(["b/0", "a/1", "a/0"], ["a", "b"], torch.device("cpu"))
    torch.testing.assert_close(rows, torch.tensor([[0.5, 0.5], [0.0, 1.0], [1.0, 0.0]]))
    copy = PopulationFrames(2)
    copy.load_state_dict(frames.state_dict())
    torch.testing.assert_close(copy(["a/0", "b/0"], ["a", "b"], torch.device("cpu")), rows[[2, 0]])
    frames.forget()  # calibration-made frames go, the training sessions' stay
    assert "a" in frames and "b" not in frames
    with pytest.raises(ValueError, match="no population frame for session"):
        frames(["b/0"], ["b"], torch.device("cpu"))
    with pytest.raises(ValueError, match="loadings of shape"):
        frames.register("c", ["c/0"], np.zeros((2, 2)))


def test_standardized_frames_give_each_component_unit_rms():
    from spikefm.nn.population import standardized

    loadings = np.array([[0.1, 0.0], [-0.3, 0.0], [0.2, 0.0]], np.float32)
    scaled = standardized(loadings)
    np.testing.assert_allclose(np.sqrt((scaled[:, 0].astype(np.float64) ** 2).mean()), 1.0, rtol=1e-6)
    np.testing.assert_allclose(scaled[:, 0] / loadings[:, 0], scaled[0, 0] / loadings[0, 0], rtol=1e-6)  # one scale
    assert np.all(scaled[:, 1] == 0)  # an empty component stays empty
