"""NLB metrics: hand-computed values, independent references, sklearn where installed, and every edge case."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import poisson

from spikefm.eval.metrics import (
    ZERO_RATE,
    bits_per_spike,
    bits_per_spike_per_neuron,
    co_bps,
    decoding_r2,
    fp_bps,
    poisson_nll_total,
    psth_r2,
    r2_score,
    ridge_cv,
    ridge_fit,
    smooth_psth,
    stack_heldin_heldout,
    velocity_r2,
)

LN2 = math.log(2.0)

# One trial, two bins, two neurons ([B=1, T=2, N=2]); neuron A fires [2, 0], neuron B fires [1, 2].
HAND_COUNTS = np.array([[[2.0, 1.0], [0.0, 2.0]]])
# Model: A gets [2, 0.5]; B gets its own mean 1.5 in both bins (exactly the null, so B gains nothing).
HAND_RATES = np.array([[[2.0, 1.5], [0.5, 1.5]]])


def reference_bps(rates: np.ndarray, counts: np.ndarray) -> float:
    """Independent reference: scipy's Poisson log-pmf, null = per-neuron mean, pooled, in bits."""
    mean = counts.reshape(-1, counts.shape[-1]).mean(axis=0)
    null = np.broadcast_to(np.maximum(mean, ZERO_RATE), counts.shape)
    ll_model = poisson.logpmf(counts, np.maximum(rates, ZERO_RATE)).sum()
    ll_null = poisson.logpmf(counts, null).sum()
    return float((ll_model - ll_null) / counts.sum() / LN2)


# ----------------------------------------------------------------------------- hand-computed example


def test_poisson_nll_total_by_hand() -> None:
    # NLL terms r - y ln r + ln y!:
    #   A bin1: 2 - 2 ln 2 + ln 2 = 2 - ln 2      A bin2: 0.5 - 0 + 0 = 0.5
    #   B bin1: 1.5 - 1 ln 1.5 + 0                B bin2: 1.5 - 2 ln 1.5 + ln 2
    # total = 5.5 - 3 ln 1.5
    expected = 5.5 - 3.0 * math.log(1.5)
    assert poisson_nll_total(HAND_RATES, HAND_COUNTS) == pytest.approx(expected, rel=1e-12)


def test_bits_per_spike_by_hand() -> None:
    # Null rates: A mean = (2 + 0) / 2 = 1, B mean = 1.5.
    # A null NLL: (1 - 2 ln 1 + ln 2) + (1 - 0 + 0) = 2 + ln 2;  A model NLL: (2 - ln 2) + 0.5 = 2.5 - ln 2.
    # B model == B null, so B adds 0 to the difference.
    # NLL_null - NLL_model = (2 + ln 2) - (2.5 - ln 2) = 2 ln 2 - 0.5 nats.
    # Total spikes = 2 + 0 + 1 + 2 = 5  ->  bits/spike = (2 ln 2 - 0.5) / 5 / ln 2 = 0.4 - 0.1 / ln 2 = 0.25573...
    expected = (2.0 * LN2 - 0.5) / 5.0 / LN2
    assert expected == pytest.approx(0.2557304959, rel=1e-9)
    assert bits_per_spike(HAND_RATES, HAND_COUNTS) == pytest.approx(expected, rel=1e-12)
    assert co_bps(HAND_RATES, HAND_COUNTS) == pytest.approx(expected, rel=1e-12)


def test_per_neuron_average_by_hand_differs_from_pooled() -> None:
    # A alone: (2 ln 2 - 0.5) / 2 spikes / ln 2 = 1 - 0.25 / ln 2;  B: 0.  Mean = (1 - 0.25 / ln 2) / 2 = 0.31966...
    a = 1.0 - 0.25 / LN2
    per = bits_per_spike_per_neuron(HAND_RATES, HAND_COUNTS, reduce=False)
    np.testing.assert_allclose(per, [a, 0.0], atol=1e-12)
    assert bits_per_spike_per_neuron(HAND_RATES, HAND_COUNTS) == pytest.approx(a / 2.0, rel=1e-12)
    assert bits_per_spike_per_neuron(HAND_RATES, HAND_COUNTS) != pytest.approx(bits_per_spike(HAND_RATES, HAND_COUNTS))


def test_silent_neuron_contributes_minus_its_predicted_rate_by_hand() -> None:
    # Add neuron C with counts [0, 0]: its null mean 0 becomes 1e-9 (null NLL 2e-9), its model NLL is 0.1 + 0.2.
    # The numerator drops by 0.3 - 2e-9 nats; the spike total is unchanged (5).
    counts = np.concatenate([HAND_COUNTS, np.zeros((1, 2, 1))], axis=-1)
    rates = np.concatenate([HAND_RATES, np.array([[[0.1], [0.2]]])], axis=-1)
    expected = (2.0 * LN2 - 0.5 - 0.3 + 2e-9) / 5.0 / LN2
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the null's zero replacement is silent, as in NLB
        assert bits_per_spike(rates, counts) == pytest.approx(expected, rel=1e-12)
    per = bits_per_spike_per_neuron(rates, counts, reduce=False)
    assert np.isnan(per[2])  # undefined for a neuron with no spikes, and left out of the mean
    assert bits_per_spike_per_neuron(rates, counts) == pytest.approx((1.0 - 0.25 / LN2) / 2.0)


# ----------------------------------------------------------------------------- properties


@settings(max_examples=40, deadline=None)
@given(
    counts=hnp.arrays(
        np.int64, st.tuples(st.integers(1, 3), st.integers(1, 6), st.integers(1, 4)), elements=st.integers(0, 6)
    ),
    scale=st.floats(0.05, 5.0),
    seed=st.integers(0, 2**16),
)
def test_bits_per_spike_matches_scipy_reference(counts: np.ndarray, scale: float, seed: int) -> None:
    counts = counts.astype(float)
    if counts.sum() == 0:
        counts[0, 0, 0] = 1.0
    rates = np.random.default_rng(seed).gamma(2.0, scale, size=counts.shape)
    assert bits_per_spike(rates, counts) == pytest.approx(reference_bps(rates, counts), rel=1e-9, abs=1e-9)


@settings(max_examples=30, deadline=None)
@given(
    counts=hnp.arrays(
        np.int64, st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4)), elements=st.integers(0, 5)
    ),
)
def test_null_model_scores_zero(counts: np.ndarray) -> None:
    counts = counts.astype(float)
    if counts.sum() == 0:
        counts[0, 0, 0] = 2.0
    null = np.broadcast_to(counts.mean(axis=(0, 1), keepdims=True), counts.shape).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # silent neurons have a zero null rate
        assert bits_per_spike(null, counts) == pytest.approx(0.0, abs=1e-9)


def test_true_rates_beat_the_null() -> None:
    rng = np.random.default_rng(0)
    t = np.linspace(0, 2 * np.pi, 50)
    rates = np.exp(np.sin(t[None, :, None] + rng.uniform(0, 2 * np.pi, size=(1, 1, 8))) - 1.0)  # [1, 50, 8]
    rates = np.broadcast_to(rates, (40, 50, 8))
    counts = rng.poisson(rates).astype(float)
    assert bits_per_spike(rates, counts) > 0.1
    # a flattened [samples, neurons] array scores the same: the null is over every axis but the last
    assert bits_per_spike(rates.reshape(-1, 8), counts.reshape(-1, 8)) == pytest.approx(bits_per_spike(rates, counts))


def test_fp_bps_scores_stacked_heldin_heldout() -> None:
    rng = np.random.default_rng(1)
    r_in, r_out = rng.uniform(0.1, 2, (5, 4, 3)), rng.uniform(0.1, 2, (5, 4, 2))
    s_in, s_out = rng.poisson(r_in).astype(float), rng.poisson(r_out).astype(float)
    rates, spikes = stack_heldin_heldout(r_in, r_out), stack_heldin_heldout(s_in, s_out)
    assert rates.shape == (5, 4, 5)
    np.testing.assert_array_equal(rates[..., 3:], r_out)
    assert fp_bps(rates, spikes) == pytest.approx(reference_bps(rates, spikes), rel=1e-10)
    with pytest.raises(ValueError, match="share every axis"):
        stack_heldin_heldout(r_in, r_out[:, :3])


# ----------------------------------------------------------------------------- edge cases


def test_zero_rates_warn_and_do_not_mutate_the_input() -> None:
    rates = HAND_RATES.copy()
    rates[0, 1, 0] = 0.0  # A's second bin, where A did not fire
    before = rates.copy()
    with pytest.warns(RuntimeWarning, match="zero rate"):
        value = bits_per_spike(rates, HAND_COUNTS)
    np.testing.assert_array_equal(rates, before)
    # predicting 1e-9 where nothing fired costs 1e-9 instead of 0.5: gain grows by 0.5 - 1e-9 nats
    assert value == pytest.approx((2.0 * LN2 - 0.5 + 0.5 - 1e-9) / 5.0 / LN2, rel=1e-12)


def test_zero_rate_where_a_spike_happened_is_heavily_penalised() -> None:
    rates = HAND_RATES.copy()
    rates[0, 0, 0] = 0.0  # A fired 2 spikes here: cost 1e-9 - 2 ln(1e-9) + ln 2 instead of 2 - ln 2
    with pytest.warns(RuntimeWarning):
        value = bits_per_spike(rates, HAND_COUNTS)
    expected = ((2.0 + LN2) - (1e-9 - 2.0 * math.log(1e-9) + LN2 + 0.5)) / 5.0 / LN2
    assert value == pytest.approx(expected, rel=1e-12)
    assert value < -10


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.5])
def test_bad_rates_raise(bad: float) -> None:
    rates = HAND_RATES.copy()
    rates[0, 0, 1] = bad
    with pytest.raises(ValueError, match="rate predictions"):
        bits_per_spike(rates, HAND_COUNTS)
    with pytest.raises(ValueError, match="rate predictions"):
        poisson_nll_total(rates, HAND_COUNTS)


def test_zero_total_spikes_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no spikes"):
        bits_per_spike(np.ones((2, 3, 4)), np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="no spikes"):
        bits_per_spike_per_neuron(np.ones((2, 3, 4)), np.zeros((2, 3, 4)))


def test_shape_mismatch_and_bad_counts_raise() -> None:
    with pytest.raises(ValueError, match="same shape"):
        bits_per_spike(np.ones((1, 2, 3)), np.ones((1, 2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        poisson_nll_total(np.ones(3), np.array([1.0, -1.0, 0.0]))


def test_nan_counts_mark_unobserved_bins_like_nlb() -> None:
    # Trial 2 is shorter: its last bin is NaN padding for every neuron; rates there may be NaN too.
    rng = np.random.default_rng(2)
    rates = rng.uniform(0.2, 2.0, (2, 4, 3))
    counts = rng.poisson(rates).astype(float)
    counts[0, 0, 0] = 1.0
    counts[1, 3, :] = np.nan
    rates_nan = rates.copy()
    rates_nan[1, 3, :] = np.nan
    observed_rates = np.concatenate([rates[0], rates[1, :3]])  # [7, 3]
    observed_counts = np.concatenate([counts[0], counts[1, :3]])
    expected = reference_bps(observed_rates, observed_counts)
    assert bits_per_spike(rates_nan, counts) == pytest.approx(expected, rel=1e-10)
    assert bits_per_spike(rates, counts) == pytest.approx(expected, rel=1e-10)


# ----------------------------------------------------------------------------- R2

def _sk_r2():
    metrics = pytest.importorskip("sklearn.metrics")
    return metrics.r2_score


@settings(max_examples=40, deadline=None)
@given(
    data=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 12), st.integers(1, 4)),
        elements=st.floats(-50, 50, allow_nan=False, allow_infinity=False),
    ),
    noise_seed=st.integers(0, 1000),
    multioutput=st.sampled_from(["variance_weighted", "uniform_average", "raw_values"]),
)
def test_r2_matches_sklearn(data: np.ndarray, noise_seed: int, multioutput: str) -> None:
    sk_r2 = _sk_r2()
    pred = data + np.random.default_rng(noise_seed).normal(size=data.shape)
    np.testing.assert_allclose(
        r2_score(pred, data, multioutput=multioutput), sk_r2(data, pred, multioutput=multioutput), rtol=1e-9, atol=1e-9
    )


def test_r2_constant_targets_follow_sklearn_force_finite() -> None:
    target = np.array([[1.0, 3.0], [1.0, 5.0], [1.0, 7.0]])
    perfect_const = target.copy()
    assert r2_score(perfect_const, target, multioutput="raw_values").tolist() == [1.0, 1.0]
    wrong_const = target + np.array([[0.5, 0.0], [0.0, 0.0], [0.0, 0.0]])
    assert r2_score(wrong_const, target, multioutput="raw_values").tolist() == [0.0, 1.0]
    # variance-weighted ignores the constant output (weight 0); uniform averages it in
    assert r2_score(wrong_const, target) == pytest.approx(1.0)
    assert r2_score(wrong_const, target, multioutput="uniform_average") == pytest.approx(0.5)
    # all outputs constant: variance weights are all 0 and sklearn falls back to uniform
    all_const = np.ones((3, 2))
    assert r2_score(all_const + np.array([[1.0, 0.0], [0, 0], [0, 0]]), all_const) == pytest.approx(0.5)


def test_r2_by_hand_and_errors() -> None:
    # target [0, 1, 2], pred [0, 1, 1]: SS_res = 1, SS_tot = 2 -> R2 = 0.5
    assert r2_score(np.array([0.0, 1.0, 1.0]), np.array([0.0, 1.0, 2.0])) == pytest.approx(0.5)
    # two outputs: (SS_res, SS_tot) = (1, 2) and (8, 8): uniform (0.5 + 0) / 2, weighted 1 - 9 / 10
    # (second output: target [0, 2, 4], mean 2, SS_tot = 8; pred [2, 2, 2], SS_res = 4 + 0 + 4 = 8)
    pred = np.array([[0.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    target = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]])
    assert r2_score(pred, target, multioutput="uniform_average") == pytest.approx(0.25)
    assert r2_score(pred, target) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="two samples"):
        r2_score(np.ones(1), np.ones(1))
    with pytest.raises(ValueError, match="same shape"):
        r2_score(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="NaN"):
        r2_score(np.array([1.0, np.nan]), np.ones(2))
    with pytest.raises(ValueError, match="multioutput"):
        r2_score(np.ones(3), np.ones(3), multioutput="mean")  # type: ignore[arg-type]


def test_decoding_r2_flattens_and_drops_unobserved_behaviour() -> None:
    rng = np.random.default_rng(3)
    target = rng.normal(size=(4, 6, 2)) * np.array([1.0, 10.0])
    pred = target + rng.normal(size=target.shape)
    expected = r2_score(pred.reshape(-1, 2), target.reshape(-1, 2))
    assert decoding_r2(pred, target) == pytest.approx(expected)
    target_nan = target.copy()
    target_nan[0, :2] = np.nan
    keep = np.ones((4, 6), bool)
    keep[0, :2] = False
    assert decoding_r2(pred, target_nan) == pytest.approx(r2_score(pred[keep], target[keep]))
    pred_nan = pred.copy()
    pred_nan[1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN behaviour predictions"):
        decoding_r2(pred_nan, target)


# ----------------------------------------------------------------------------- ridge / velocity R2


def _velocity_data(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(12, 2))
    train_rates = rng.gamma(2.0, 0.5, size=(24, 20, 12))
    eval_rates = rng.gamma(2.0, 0.5, size=(10, 20, 12))
    train_vel = train_rates @ w + rng.normal(scale=2.0, size=(24, 20, 2))
    eval_vel = eval_rates @ w + rng.normal(scale=2.0, size=(10, 20, 2))
    return train_rates, train_vel, eval_rates, eval_vel


def test_ridge_fit_matches_closed_form() -> None:
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(50, 4)), rng.normal(size=(50, 2))
    w, b = ridge_fit(x, y, alpha=0.7)
    xc, yc = x - x.mean(0), y - y.mean(0)
    w_ref = np.linalg.solve(xc.T @ xc + 0.7 * np.eye(4), xc.T @ yc)
    np.testing.assert_allclose(w, w_ref, atol=1e-10)
    np.testing.assert_allclose(b, y.mean(0) - x.mean(0) @ w_ref, atol=1e-10)


def test_velocity_r2_matches_sklearn_gridsearch() -> None:
    linear_model = pytest.importorskip("sklearn.linear_model")
    model_selection = pytest.importorskip("sklearn.model_selection")
    train_rates, train_vel, eval_rates, eval_vel = _velocity_data()
    grid = model_selection.GridSearchCV(linear_model.Ridge(), {"alpha": np.logspace(-4, 0, 9)})
    grid.fit(train_rates.reshape(-1, 12), train_vel.reshape(-1, 2))
    expected = grid.score(eval_rates.reshape(-1, 12), eval_vel.reshape(-1, 2))
    assert velocity_r2(train_rates, train_vel, eval_rates, eval_vel) == pytest.approx(expected, rel=1e-9)
    alpha, w, _ = ridge_cv(train_rates.reshape(-1, 12), train_vel.reshape(-1, 2))
    assert alpha == pytest.approx(grid.best_params_["alpha"])
    np.testing.assert_allclose(w, grid.best_estimator_.coef_.T, atol=1e-8)


def test_velocity_r2_selects_alpha_by_cv() -> None:
    # many noisy, redundant inputs and few samples: a strong penalty must win the grid search
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 30))
    y = x[:, :1] + rng.normal(scale=3.0, size=(40, 1))
    alpha, _, _ = ridge_cv(x, y, alphas=np.logspace(-4, 3, 8))
    assert alpha >= 10.0


def test_velocity_r2_drops_nan_behaviour_and_rejects_nan_rates() -> None:
    train_rates, train_vel, eval_rates, eval_vel = _velocity_data(1)
    full = velocity_r2(train_rates[:, 2:], train_vel[:, 2:], eval_rates[:, 2:], eval_vel[:, 2:])
    # NaN behaviour in the first two bins of every trial (NLB's lag padding): those samples are dropped
    train_vel_nan, eval_vel_nan = train_vel.copy(), eval_vel.copy()
    train_vel_nan[:, :2] = np.nan
    eval_vel_nan[:, :2] = np.nan
    train_rates_nan = train_rates.copy()
    train_rates_nan[:, :2] = np.nan  # rates may be NaN where behaviour is
    assert velocity_r2(train_rates_nan, train_vel_nan, eval_rates, eval_vel_nan) == pytest.approx(full, rel=1e-10)
    eval_rates_bad = eval_rates.copy()
    eval_rates_bad[0, 5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN rate"):
        velocity_r2(train_rates, train_vel, eval_rates_bad, eval_vel)
    with pytest.raises(ValueError, match="same neurons"):
        velocity_r2(train_rates, train_vel, eval_rates[..., :5], eval_vel)


def test_velocity_r2_perfect_linear_readout_is_one() -> None:
    rng = np.random.default_rng(6)
    w = rng.normal(size=(5, 2))
    train, evals = rng.normal(size=(8, 10, 5)), rng.normal(size=(4, 10, 5))
    assert velocity_r2(train, train @ w + 3.0, evals, evals @ w + 3.0, alphas=np.array([1e-8])) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- PSTH


def test_psth_r2_matches_direct_computation() -> None:
    rng = np.random.default_rng(7)
    true_psth = rng.gamma(2.0, 0.5, size=(3, 8, 4))
    conditions = np.array([0, 0, 1, 2, 2, 2, 1])
    rates = true_psth[conditions] + rng.normal(scale=0.3, size=(7, 8, 4))
    pred = np.vstack([rates[conditions == c].mean(axis=0) for c in range(3)])  # [3 * 8, 4]
    target = true_psth.reshape(-1, 4)
    ss_res = np.sum((target - pred) ** 2, axis=0)  # per neuron, over condition x time
    ss_tot = np.sum((target - target.mean(axis=0)) ** 2, axis=0)
    expected = float(np.mean(1.0 - ss_res / ss_tot))
    assert psth_r2(rates, conditions, true_psth) == pytest.approx(expected, rel=1e-12)
    # exact condition means score 1 even though single trials are noisy
    assert psth_r2(true_psth[conditions], conditions, true_psth) == pytest.approx(1.0)


def test_psth_r2_masks_nan_psth_bins_and_skips_conditions_without_trials() -> None:
    rng = np.random.default_rng(8)
    true_psth = rng.gamma(2.0, 0.5, size=(3, 6, 2))
    true_psth[1, 4:] = np.nan  # condition 1 is shorter
    conditions = np.array([0, 1, 1])  # condition 2 has no eval trials
    rates = rng.gamma(2.0, 0.5, size=(3, 6, 2))
    rates[1:, 4:] = np.nan  # predictions beyond the PSTH are ignored
    pred = np.vstack([rates[0], rates[1:, :4].mean(axis=0)])
    target = np.vstack([true_psth[0], true_psth[1, :4]])
    assert psth_r2(rates, conditions, true_psth) == pytest.approx(r2_score(pred, target, multioutput="uniform_average"))
    rates[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN rate predictions"):
        psth_r2(rates, conditions, true_psth)


def test_psth_r2_jitter_realigns_trials() -> None:
    rng = np.random.default_rng(9)
    true_psth = rng.gamma(2.0, 0.5, size=(1, 10, 3))
    true_psth[0, :2] = np.nan  # NLB front-pads with NaN where jittered trials have no data
    late = np.full((1, 10, 3), np.nan)
    late[0, :8] = true_psth[0, 2:]  # the trial's data arrives 2 bins early; a jitter of +2 puts it back
    assert psth_r2(late, np.array([0]), true_psth, jitter=np.array([2])) == pytest.approx(1.0)


def test_psth_r2_errors() -> None:
    psth = np.ones((2, 4, 3))
    with pytest.raises(ValueError, match="integer"):
        psth_r2(np.ones((2, 4, 3)), np.array([0.0, 1.0]), psth)
    with pytest.raises(ValueError, match="no PSTH"):
        psth_r2(np.ones((2, 4, 3)), np.array([0, 5]), psth)
    with pytest.raises(ValueError, match="share time and neuron"):
        psth_r2(np.ones((2, 5, 3)), np.array([0, 1]), psth)


def test_smooth_psth_averages_smoothed_trials_per_condition() -> None:
    rng = np.random.default_rng(10)
    spikes = rng.poisson(1.0, size=(5, 40, 3)).astype(float)
    conditions = np.array([1, 0, 1, 1, 0])
    psth = smooth_psth(spikes, conditions, bin_size=0.01, kernel_sd=0.03, n_conditions=3)
    assert psth.shape == (3, 40, 3)
    from spikefm.eval.baselines import smooth_spikes

    smoothed = smooth_spikes(spikes, 0.01, 0.03)
    np.testing.assert_allclose(psth[0], smoothed[[1, 4]].mean(axis=0))
    np.testing.assert_allclose(psth[1], smoothed[[0, 2, 3]].mean(axis=0))
    assert np.all(np.isnan(psth[2]))  # no trials
    # constant firing stays constant away from the zero-padded trial edges (units: counts per bin)
    flat = smooth_psth(np.full((2, 60, 1), 2.0), np.array([0, 0]), bin_size=0.01, kernel_sd=0.03)
    np.testing.assert_allclose(flat[0, 10:-10, 0], 2.0)
