"""Baselines: NLB smoothing kernel, Poisson GLM, smoothing baseline, Wiener filter, oracle."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.eval.baselines import (
    PoissonGLM,
    RidgeDecoder,
    SmoothingBaseline,
    gaussian_window,
    lagged_features,
    oracle_scores,
    smooth_spikes,
)
from spikefm.eval.metrics import co_bps, r2_score, stack_heldin_heldout


def simulate_latent_spiking(seed: int = 0, trials: int = 40, bins: int = 60, n_in: int = 30, n_out: int = 10):
    """Smooth 3-D latents -> log-linear rates (expected counts per 20 ms bin) -> Poisson counts, plus velocity."""
    rng = np.random.default_rng(seed)
    t = np.arange(bins) * 0.02
    phase = rng.uniform(0, 2 * np.pi, size=(trials, 1, 3))
    freq = np.array([1.0, 1.7, 2.3])
    latents = np.sin(2 * np.pi * freq * t[None, :, None] + phase)  # [B, T, 3]
    readout = rng.normal(scale=0.6, size=(3, n_in + n_out))
    rates = np.exp(latents @ readout + np.log(0.3))  # [B, T, N]
    counts = rng.poisson(rates).astype(float)
    velocity = latents @ rng.normal(size=(3, 2))  # [B, T, 2]
    return rates[..., :n_in], rates[..., n_in:], counts[..., :n_in], counts[..., n_in:], velocity


# ----------------------------------------------------------------------------- smoothing


def test_gaussian_window_matches_nlb_construction() -> None:
    window = gaussian_window(0.05, 0.005)  # NLB MC_Maze: 50 ms sd at 5 ms bins -> int(6 * 10) = 60 taps
    assert window.size == 60
    assert window.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(window, window[::-1])
    n = np.arange(60) - 29.5  # scipy's symmetric Gaussian window, centred between taps 29 and 30
    expected = np.exp(-0.5 * (n / 10.0) ** 2)
    np.testing.assert_allclose(window, expected / expected.sum())
    assert gaussian_window(0.07, 0.005).size == 84
    np.testing.assert_array_equal(gaussian_window(0.001, 0.02), [1.0])  # sd far below a bin: no smoothing
    with pytest.raises(ValueError, match="> 0"):
        gaussian_window(0.0, 0.005)


@settings(max_examples=25, deadline=None)
@given(
    trials=st.integers(1, 3),
    bins=st.integers(12, 60),
    sd_bins=st.floats(0.5, 2.0),
    seed=st.integers(0, 1000),
)
def test_smooth_spikes_equals_numpy_same_convolution(trials: int, bins: int, sd_bins: float, seed: int) -> None:
    counts = np.random.default_rng(seed).poisson(0.5, size=(trials, bins, 3)).astype(float)
    before = counts.copy()
    window = gaussian_window(sd_bins * 0.01, 0.01)
    ours = smooth_spikes(counts, 0.01, sd_bins * 0.01)
    reference = np.apply_along_axis(lambda x: np.convolve(x, window, "same"), 1, counts)
    np.testing.assert_allclose(ours, reference, atol=1e-12)
    np.testing.assert_array_equal(counts, before)
    assert np.all(ours >= 0)


def test_smooth_spikes_conserves_interior_mass_and_keeps_short_trials() -> None:
    counts = np.zeros((1, 80, 1))
    counts[0, 40, 0] = 3.0
    smoothed = smooth_spikes(counts, bin_size=0.005, kernel_sd=0.02)
    assert smoothed.sum() == pytest.approx(3.0)
    short = smooth_spikes(np.ones((2, 10, 2)), bin_size=0.005, kernel_sd=0.05)  # 60-tap window, 10-bin trials
    assert short.shape == (2, 10, 2)
    assert smooth_spikes(np.ones((10, 2)), 0.005, 0.02).shape == (10, 2)
    with pytest.raises(ValueError, match="NaN"):
        smooth_spikes(np.full((1, 5, 1), np.nan), 0.005, 0.02)


# ----------------------------------------------------------------------------- Poisson GLM


def test_glm_recovers_known_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6000, 4))
    w_true = np.array([[0.5, -0.3], [0.0, 0.4], [-0.6, 0.0], [0.2, 0.2]])
    b_true = np.array([-0.5, 0.3])
    y = rng.poisson(np.exp(x @ w_true + b_true))
    glm = PoissonGLM(alpha=0.0).fit(x, y)
    assert glm.converged_
    np.testing.assert_allclose(glm.coef_, w_true, atol=0.05)
    np.testing.assert_allclose(glm.intercept_, b_true, atol=0.05)
    np.testing.assert_allclose(glm.predict(x[:3]), np.exp(x[:3] @ glm.coef_ + glm.intercept_))


def test_glm_matches_sklearn_poisson_regressor() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)
    x = rng.normal(loc=-3.0, size=(800, 5))  # off-centre inputs, like log-smoothed counts
    y = rng.poisson(np.exp(0.3 * x[:, :2].sum(1, keepdims=True) + 1.0 + 0.2 * rng.normal(size=(800, 3))))
    glm = PoissonGLM(alpha=0.05).fit(x, y)
    for d in range(3):
        ref = linear_model.PoissonRegressor(alpha=0.05, tol=1e-10, max_iter=10_000).fit(x, y[:, d])
        np.testing.assert_allclose(glm.coef_[:, d], ref.coef_, atol=1e-5)
        assert glm.intercept_[d] == pytest.approx(ref.intercept_, abs=1e-5)


def test_glm_penalty_shrinks_and_silent_neuron_predicts_floor() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 3))
    y = np.stack([rng.poisson(np.exp(x[:, 0])), np.zeros(400)], axis=1)
    loose = PoissonGLM(alpha=0.0).fit(x, y)
    tight = PoissonGLM(alpha=10.0).fit(x, y)
    assert np.abs(tight.coef_[:, 0]).sum() < 0.5 * np.abs(loose.coef_[:, 0]).sum()
    silent = loose.predict(x)[:, 1]
    assert np.all(silent <= 1e-6) and np.all(silent >= 1e-9)  # NLB's clip floor
    with pytest.raises(ValueError, match="non-negative"):
        PoissonGLM().fit(x, -np.ones((400, 1)))
    with pytest.raises(RuntimeError, match="before fit"):
        PoissonGLM().predict(x)


# ----------------------------------------------------------------------------- smoothing baseline


def test_smoothing_baseline_beats_null_but_not_oracle() -> None:
    r_in, r_out, s_in, s_out, _ = simulate_latent_spiking(seed=3)
    model = SmoothingBaseline(bin_size=0.02, kernel_sd=0.04, alpha=0.01).fit(s_in[:30], s_out[:30])
    rates_in, rates_out = model.predict(s_in[30:])
    assert rates_in.shape == s_in[30:].shape and rates_out.shape == s_out[30:].shape
    np.testing.assert_allclose(rates_in, smooth_spikes(s_in[30:], 0.02, 0.04))  # held-in rates: smoothed counts
    assert np.all(rates_out >= 1e-9)
    baseline = co_bps(rates_out, s_out[30:])
    oracle = co_bps(r_out[30:], s_out[30:])
    assert 0.0 < baseline < oracle


def test_smoothing_baseline_validates_inputs() -> None:
    with pytest.raises(RuntimeError, match="before fit"):
        SmoothingBaseline(bin_size=0.005).predict(np.zeros((1, 5, 2)))
    model = SmoothingBaseline(bin_size=0.005)
    with pytest.raises(ValueError, match="matching held-in"):
        model.fit(np.zeros((2, 5, 3)), np.zeros((2, 6, 1)))
    model.fit(np.random.default_rng(0).poisson(1.0, (2, 20, 3)), np.ones((2, 20, 1)))
    with pytest.raises(ValueError, match=r"\[B, T, 3\]"):
        model.predict(np.zeros((1, 20, 4)))


# ----------------------------------------------------------------------------- ridge decoder


def test_lagged_features_shift_within_trials_only() -> None:
    counts = np.arange(2 * 4 * 2, dtype=float).reshape(2, 4, 2) + 1  # [B=2, T=4, N=2], no zeros
    feats = lagged_features(counts, lags=3).reshape(2, 4, 6)
    np.testing.assert_array_equal(feats[:, :, :2], counts)  # lag 0
    np.testing.assert_array_equal(feats[:, 1:, 2:4], counts[:, :-1])  # lag 1
    np.testing.assert_array_equal(feats[:, 2:, 4:], counts[:, :-2])  # lag 2
    assert np.all(feats[:, 0, 2:] == 0) and np.all(feats[:, 1, 4:] == 0)  # no leakage from the previous trial
    with pytest.raises(ValueError, match="lags"):
        lagged_features(counts, 0)


def test_ridge_decoder_recovers_a_linear_map() -> None:
    rng = np.random.default_rng(4)
    counts = rng.poisson(2.0, size=(30, 25, 6)).astype(float)
    w = rng.normal(size=(6 * 3, 2))
    behaviour = (lagged_features(counts, 3) @ w + np.array([1.0, -2.0])).reshape(30, 25, 2)
    decoder = RidgeDecoder(lags=3, alphas=np.logspace(-6, 2, 9)).fit(counts, behaviour)
    np.testing.assert_allclose(decoder.coef_, w, atol=1e-3)
    np.testing.assert_allclose(decoder.intercept_, [1.0, -2.0], atol=1e-3)
    assert decoder.alpha_ <= 1e-2
    held = rng.poisson(2.0, size=(5, 25, 6)).astype(float)
    target = (lagged_features(held, 3) @ w + np.array([1.0, -2.0])).reshape(5, 25, 2)
    assert decoder.predict(held).shape == (5, 25, 2)
    assert decoder.score(held, target) == pytest.approx(1.0, abs=1e-6)


def test_ridge_decoder_with_smoothing_decodes_noisy_latent_velocity() -> None:
    _, _, s_in, s_out, velocity = simulate_latent_spiking(seed=5)
    counts = stack_heldin_heldout(s_in, s_out)
    decoder = RidgeDecoder(lags=3, bin_size=0.02, kernel_sd=0.04).fit(counts[:30], velocity[:30])
    pred = decoder.predict(counts[30:])
    expected = r2_score(pred.reshape(-1, 2), velocity[30:].reshape(-1, 2))
    assert decoder.score(counts[30:], velocity[30:]) == pytest.approx(expected)
    assert decoder.score(counts[30:], velocity[30:]) > 0.5


def test_ridge_decoder_handles_samples_and_nan_behaviour() -> None:
    rng = np.random.default_rng(6)
    counts = rng.poisson(1.0, size=(200, 4)).astype(float)
    behaviour = counts @ np.array([1.0, -1.0, 0.5, 0.0])  # [S]
    behaviour_nan = behaviour.copy()
    behaviour_nan[:10] = np.nan
    decoder = RidgeDecoder(lags=1, alphas=np.array([1e-8])).fit(counts, behaviour_nan)
    np.testing.assert_allclose(decoder.coef_[:, 0], [1.0, -1.0, 0.5, 0.0], atol=1e-6)
    assert decoder.predict(counts).shape == (200, 1)
    with pytest.raises(ValueError, match="align"):
        decoder.fit(counts, behaviour[:50])
    with pytest.raises(ValueError, match="neurons"):
        decoder.predict(counts[:, :3])
    with pytest.raises(ValueError, match="both"):
        RidgeDecoder(bin_size=0.01)


# ----------------------------------------------------------------------------- oracle


def test_oracle_scores_true_rates_with_the_same_metrics() -> None:
    r_in, r_out, s_in, s_out, velocity = simulate_latent_spiking(seed=7)
    rates = stack_heldin_heldout(r_in, r_out)
    scores = oracle_scores(
        r_out[30:],
        s_out[30:],
        eval_true_rates_forward=rates[30:, -10:],
        eval_spikes_forward=stack_heldin_heldout(s_in, s_out)[30:, -10:],
        train_true_rates=rates[:30],
        train_behaviour=velocity[:30],
        eval_true_rates=rates[30:],
        eval_behaviour=velocity[30:],
    )
    assert set(scores) == {"co-bps", "fp-bps", "vel R2"}
    assert scores["co-bps"] == pytest.approx(co_bps(r_out[30:], s_out[30:]))
    assert scores["co-bps"] > 0 and scores["fp-bps"] > 0
    assert scores["vel R2"] > 0.9  # the true rates are a smooth function of the latents that drive velocity
    assert set(oracle_scores(r_out, s_out)) == {"co-bps"}
    with pytest.raises(ValueError, match="together"):
        oracle_scores(r_out, s_out, train_true_rates=rates)
    with pytest.raises(ValueError, match="both"):
        oracle_scores(r_out, s_out, eval_true_rates_forward=rates)
