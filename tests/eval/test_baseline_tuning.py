"""Tunable baselines: validation-only search, causal / acausal Wiener, Kalman, history GLM, causal smoothing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.eval.baselines import (
    BASELINES,
    HistoryGLM,
    Kalman,
    KalmanDecoder,
    Smoothing,
    Wiener,
    baselines_for,
    lagged_features,
    make_baseline,
    smooth_spikes,
    tune_on_val,
)
from spikefm.eval.baselines.tuning import Choice, grid
from spikefm.eval.metrics import decoding_r2
from spikefm.eval.samples import BehaviorSamples
from spikefm.eval.trials import TrialArrays


def arrays(counts: np.ndarray, behavior: np.ndarray | None, n_out: int = 0, bin_size: float = 0.02) -> TrialArrays:
    heldout = np.zeros(counts.shape[2], bool)
    if n_out:
        heldout[-n_out:] = True
    return TrialArrays(counts, behavior, None, np.arange(counts.shape[0], dtype=float), heldout, bin_size)


def latent_data(seed: int, *, neural_lead: int, trials: int = 30, bins: int = 40, n: int = 12):
    """Counts driven by a smooth latent, behaviour = the latent; counts at t show the latent at t + neural_lead, so
    behaviour at t is read from counts at t - neural_lead (the past when neural_lead > 0, the future when < 0)."""
    rng = np.random.default_rng(seed)
    m = 5
    t = np.arange(bins + 2 * m) * 0.02
    phase = rng.uniform(0, 2 * np.pi, size=(trials, 1, 2))
    latent = np.sin(2 * np.pi * np.array([1.3, 2.1]) * t[None, :, None] + phase)  # [B, T + 2m, 2]
    rates = np.exp(latent @ rng.normal(scale=0.8, size=(2, n)))
    counts = rng.poisson(rates[:, m + neural_lead : m + neural_lead + bins]).astype(float)
    return counts, latent[:, m : m + bins]


def following_behaviour(seed: int, trials: int = 30):
    """Behaviour read best from counts 3 bins in the future."""
    return latent_data(seed, neural_lead=-3, trials=trials)


def split(counts, behaviour, n_out: int = 0):
    k = counts.shape[0]
    a, b = int(0.6 * k), int(0.8 * k)
    return (arrays(counts[:a], behaviour[:a], n_out), arrays(counts[a:b], behaviour[a:b], n_out),
            arrays(counts[b:], behaviour[b:], n_out))


# ----------------------------------------------------------------------------- features


@settings(max_examples=30, deadline=None)
@given(bins=st.integers(1, 12), lags=st.integers(1, 4), leads=st.integers(0, 4), seed=st.integers(0, 99))
def test_lagged_features_reads_past_and_future_bins_within_trials(bins: int, lags: int, leads: int, seed: int) -> None:
    x = np.random.default_rng(seed).poisson(2.0, size=(2, bins, 3)).astype(float)
    f = lagged_features(x, lags, leads).reshape(2, bins, lags + leads, 3)
    for t in range(bins):
        for lag in range(lags):
            np.testing.assert_array_equal(f[:, t, lag], x[:, t - lag] if t - lag >= 0 else 0.0)
        for lead in range(1, leads + 1):
            np.testing.assert_array_equal(f[:, t, lags + lead - 1], x[:, t + lead] if t + lead < bins else 0.0)


@settings(max_examples=20, deadline=None)
@given(t_cut=st.integers(1, 29), seed=st.integers(0, 99))
def test_causal_smoothing_ignores_the_future(t_cut: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.poisson(1.0, size=(1, 30, 2)).astype(float)
    y = x.copy()
    y[:, t_cut:] = rng.poisson(3.0, size=(1, 30 - t_cut, 2))
    a, b = smooth_spikes(x, 0.02, 0.05, causal=True), smooth_spikes(y, 0.02, 0.05, causal=True)
    np.testing.assert_array_equal(a[:, :t_cut], b[:, :t_cut])
    assert smooth_spikes(np.ones((1, 30, 1)), 0.02, 0.05, causal=True)[0, -1, 0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------- Wiener


def test_acausal_wiener_uses_future_bins_and_beats_the_causal_form() -> None:
    train, val, test = split(*following_behaviour(0, trials=40))
    causal = tune_on_val(Wiener(causal=True), train, val, budget=8)
    acausal = tune_on_val(Wiener(causal=False), train, val, budget=8)
    assert "leads" not in causal.params and acausal.params["leads"] >= 3  # behaviour shows 3 bins later
    assert acausal.baseline.score(test) > causal.baseline.score(test) + 0.1
    assert not acausal.baseline.causal and causal.baseline.causal


def test_wiener_window_caps_what_the_acausal_form_reads() -> None:
    wiener = Wiener(causal=False, window_bins=6)
    space = wiener.search_space()
    assert max(space["leads"].values) <= 5 and max(space["lags"].values) <= 6
    train, _, _ = split(*following_behaviour(1))
    wiener.fit(train, {"lags": 6, "leads": 5, "alpha": 1.0})
    assert wiener._features(train.counts).shape[1] == 6 * train.counts.shape[2]  # 1 lag + 5 leads


@pytest.mark.parametrize("name", ["wiener causal", "kalman"])
def test_causal_decoders_never_read_the_future(name: str) -> None:
    train, val, _ = split(*following_behaviour(2))
    params = {"wiener causal": {"lags": 5, "alpha": 1.0}, "kalman": {"lag": 2, "alpha": 1.0}}[name]
    model = make_baseline(name).fit(train, params)
    changed = val.counts.copy()
    changed[:, 20:] = np.random.default_rng(0).poisson(5.0, size=changed[:, 20:].shape)
    before = model.predict(val)
    after = model.predict(arrays(changed, val.behavior))
    np.testing.assert_allclose(before[:, :20], after[:, :20])
    assert not np.allclose(before[:, 20:], after[:, 20:])


# ----------------------------------------------------------------------------- Kalman


def test_kalman_recovers_a_known_linear_system() -> None:
    rng = np.random.default_rng(0)
    a = np.array([[0.95, 0.1], [-0.1, 0.9]])
    h = rng.normal(size=(10, 2))
    trials, bins = 200, 60
    x = np.zeros((trials, bins, 2))
    x[:, 0] = rng.normal(size=(trials, 2))
    for t in range(1, bins):
        x[:, t] = x[:, t - 1] @ a.T + rng.normal(scale=0.3, size=(trials, 2))
    z = x @ h.T + 2.0 + rng.normal(scale=1.0, size=(trials, bins, 10))
    dec = KalmanDecoder().fit(z[:150], x[:150])
    np.testing.assert_allclose(dec.A, a, atol=0.03)
    np.testing.assert_allclose(dec.H, h, atol=0.05)
    np.testing.assert_allclose(np.diag(dec.Q), 1.0, atol=0.1)
    np.testing.assert_allclose(dec.W, 0.09 * np.eye(2), atol=0.02)
    filtered = decoding_r2(dec.predict(z[150:]), x[150:])
    instantaneous = decoding_r2((z[150:] - dec.z_mean) @ np.linalg.pinv(dec.H).T + dec.x_mean, x[150:])
    assert filtered > instantaneous + 0.02  # the dynamics model adds over decoding each bin alone
    assert filtered > 0.85


def test_kalman_tuned_on_validation_decodes_population_activity() -> None:
    train, val, test = split(*latent_data(3, neural_lead=2, trials=40))  # neurons lead behaviour by 2 bins
    tuned = tune_on_val(Kalman(lags=(0, 2), alphas=(1.0, 100.0)), train, val, budget=4)
    assert len(tuned.trials) == 4 and tuned.val_score == max(s for _, s in tuned.trials)
    assert tuned.baseline.score(test) > 0.7


# ----------------------------------------------------------------------------- history GLM, smoothing


def test_history_glm_gains_from_behaviour_and_history() -> None:
    rng = np.random.default_rng(0)
    trials, bins, n = 40, 40, 6
    behaviour = np.sin(np.linspace(0, 6, bins))[None, :, None] * rng.uniform(0.5, 1.5, size=(trials, 1, 1))
    counts = rng.poisson(np.exp(behaviour @ rng.normal(size=(1, n)))).astype(float)
    train, val, test = split(counts, behaviour)
    with_b = tune_on_val(HistoryGLM(), train, val, budget=4)
    without = tune_on_val(HistoryGLM(use_behavior=False), train, val, budget=4)
    assert with_b.baseline.score(test) > without.baseline.score(test) + 0.02 > 0.3
    assert with_b.baseline.predict(test).shape == test.counts.shape


def test_smoothing_tuned_on_val_is_the_best_candidate() -> None:
    rng = np.random.default_rng(0)
    latent = np.sin(np.linspace(0, 4, 50))[None, :, None] + rng.normal(scale=0.5, size=(40, 1, 1))
    counts = rng.poisson(np.exp(latent @ rng.normal(scale=0.7, size=(1, 16)) - 0.5)).astype(float)
    train, val, test = split(counts, np.zeros(counts.shape[:2] + (1,)), n_out=4)
    tuned = tune_on_val(Smoothing(kernel_sds=(0.02, 0.1), alphas=(1e-3, 1e-1)), train, val, budget=4)
    assert len(tuned.trials) == 4  # the 2 x 2 grid fits the budget: exhaustive
    assert tuned.val_score == max(score for _, score in tuned.trials)
    assert tuned.val_score == pytest.approx(tuned.baseline.score(val))
    assert np.isfinite(tuned.baseline.score(test))


# ----------------------------------------------------------------------------- the search itself


class Spy(Wiener):
    """A Wiener filter that records every array it is fitted or scored on."""

    seen: list[int]

    def fit(self, train, params):
        self.seen.append(id(train))
        return super().fit(train, params)

    def score(self, data):
        self.seen.append(id(data))
        return super().score(data)


def test_tuning_reads_only_train_and_val() -> None:
    train, val, test = split(*following_behaviour(4))
    spy = Spy(causal=True)
    spy.seen = []
    tuned = tune_on_val(spy, train, val, budget=5, seed=1)
    assert set(spy.seen) == {id(train), id(val)} and id(test) not in spy.seen
    assert len(tuned.trials) == 5 and tuned.budget == 5
    assert tuned.params in [p for p, _ in tuned.trials]


def test_tuning_is_deterministic_given_its_seed() -> None:
    train, val, _ = split(*following_behaviour(5))
    a = tune_on_val(Wiener(causal=False), train, val, budget=4, seed=3)
    b = tune_on_val(Wiener(causal=False), train, val, budget=4, seed=3)
    assert a.trials == b.trials


def test_grid_and_param_checks() -> None:
    assert grid({"a": Choice((1, 2)), "b": Choice(("x",))}) == [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    train, _, _ = split(*following_behaviour(6))
    with pytest.raises(KeyError, match="missing"):
        Wiener(causal=True).fit(train, {"lags": 2})
    with pytest.raises(ValueError, match="budget"):
        tune_on_val(Wiener(), train, train, budget=0)


def test_registry_of_baselines_declares_causality() -> None:
    for name in BASELINES:
        baseline = make_baseline(name)
        assert baseline.name == name and isinstance(baseline.causal, bool) and baseline.metric
    assert baselines_for("decoding", causal=True) == ["wiener causal", "kalman"]
    assert "wiener acausal" in baselines_for("decoding", causal=False)
    assert baselines_for("self_supervised", causal=True) == ["smoothing causal"]
    with pytest.raises(KeyError, match="unknown baseline"):
        make_baseline("lstm")


def test_decoders_score_at_recorded_samples() -> None:
    train, val, _ = split(*following_behaviour(7))
    model = Wiener(causal=True).fit(train, {"lags": 3, "alpha": 1.0})
    k, t = val.counts.shape[:2]
    at_centres = BehaviorSamples(np.repeat(np.arange(k), t), np.tile((np.arange(t) + 0.5) * 0.02, k),
                                 val.behavior.reshape(-1, val.behavior.shape[2]))
    with_samples = TrialArrays(val.counts, val.behavior, None, val.starts, val.heldout, 0.02, at_centres)
    assert model.score(with_samples) == pytest.approx(model.score(val))
