"""The fast Wiener / ridge search: one set of lagged sufficient statistics for every (lags, leads, alpha)."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from spikefm.eval.baselines import Wiener, lagged_features
from spikefm.eval.baselines.wiener import LaggedRidge, lag_shifts
from spikefm.eval.metrics import ridge_fit
from spikefm.eval.trials import TrialArrays


def counts_and_behaviour(seed: int, shape: tuple[int, ...], dims: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    counts = rng.poisson(1.5, size=shape).astype(float)
    weights = rng.normal(size=(shape[-1], dims))
    behaviour = counts @ weights + rng.normal(scale=0.5, size=shape[:-1] + (dims,))
    return counts, behaviour


def plain(counts, behaviour, lags, leads, alpha):
    x = lagged_features(counts, lags, leads)
    y = behaviour.reshape(x.shape[0], -1)
    keep = ~np.any(np.isnan(y), axis=1)
    return ridge_fit(x[keep], y[keep], alpha)


@pytest.mark.parametrize("shape", [(6, 25, 5), (150, 7)])
@pytest.mark.parametrize(("lags", "leads", "alpha"), [(1, 0, 0.01), (4, 0, 1.0), (3, 2, 10.0), (1, 5, 100.0)])
def test_lagged_ridge_equals_the_plain_solve(shape, lags, leads, alpha) -> None:
    counts, behaviour = counts_and_behaviour(0, shape)
    behaviour.reshape(-1, 2)[[3, 17, 40]] = np.nan  # samples without behaviour are left out by both
    ridge = LaggedRidge(counts, behaviour)
    for _ in range(2):  # the second solve comes from the kept eigendecomposition
        w, b = ridge.solve(lags, leads, alpha)
        w_ref, b_ref = plain(counts, behaviour, lags, leads, alpha)
        np.testing.assert_allclose(w, w_ref, rtol=0, atol=1e-8)
        np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-8)


def test_lag_shifts_follow_the_feature_layout() -> None:
    counts = np.arange(40, dtype=float).reshape(1, 10, 4)
    x = lagged_features(counts, 3, 2).reshape(10, 5, 4)
    for block, shift in enumerate(lag_shifts(3, 2)):
        t = np.arange(10)
        inside = (t - shift >= 0) & (t - shift < 10)
        np.testing.assert_array_equal(x[inside, block], counts[0, (t - shift)[inside]])
        assert not x[~inside, block].any()


def arrays(counts: np.ndarray, behaviour: np.ndarray) -> TrialArrays:
    return TrialArrays(counts, behaviour, None, np.arange(counts.shape[0], dtype=float),
                       np.zeros(counts.shape[2], bool), 0.05)


def test_wiener_copies_share_statistics_and_refit_on_new_data() -> None:
    counts, behaviour = counts_and_behaviour(1, (5, 30, 6))
    template = Wiener(causal=False, window_bins=8)
    first = copy.deepcopy(template).fit(arrays(counts, behaviour), {"lags": 3, "leads": 2, "alpha": 1.0})
    second = copy.deepcopy(template).fit(arrays(counts, behaviour), {"lags": 5, "leads": 3, "alpha": 10.0})
    assert first._ridge is second._ridge is template._ridge  # one set of statistics for the whole search
    np.testing.assert_allclose(first.coef_, plain(counts, behaviour, 3, 2, 1.0)[0], rtol=0, atol=1e-8)
    np.testing.assert_allclose(second.coef_, plain(counts, behaviour, 5, 3, 10.0)[0], rtol=0, atol=1e-8)
    other_counts, other_behaviour = counts_and_behaviour(2, (5, 30, 6))
    third = copy.deepcopy(template).fit(arrays(other_counts, other_behaviour), {"lags": 3, "leads": 2, "alpha": 1.0})
    np.testing.assert_allclose(third.coef_, plain(other_counts, other_behaviour, 3, 2, 1.0)[0], rtol=0, atol=1e-8)
    assert not np.allclose(third.coef_, first.coef_)


def test_lagged_ridge_rejects_bad_arguments() -> None:
    counts, behaviour = counts_and_behaviour(3, (40, 3))
    with pytest.raises(ValueError, match="lags >= 1"):
        LaggedRidge(counts, behaviour).solve(0, 0, 1.0)
    with pytest.raises(ValueError, match="finite behaviour"):
        LaggedRidge(counts, np.full_like(behaviour, np.nan))
