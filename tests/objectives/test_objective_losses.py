"""Losses against torch.nn.functional and closed-form references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from spikefm.objectives import (
    count_cross_entropy,
    counts_to_classes,
    expected_count_from_logits,
    info_nce,
    mse,
    nt_xent,
    poisson_nll,
    poisson_soft_targets,
)

FAST = settings(max_examples=30, deadline=None)

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3).map(tuple)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _counts(shape: tuple[int, ...], g: torch.Generator, high: int = 6) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=g).to(torch.float64)


# --------------------------------------------------------------------------- Poisson NLL


@FAST
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_poisson_nll_matches_functional(shape, seed, reduction):
    g = _gen(seed)
    log_rates = torch.randn(shape, generator=g, dtype=torch.float64)
    counts = _counts(shape, g)
    expected = F.poisson_nll_loss(log_rates, counts, log_input=True, full=False, reduction=reduction)
    torch.testing.assert_close(poisson_nll(log_rates, counts, reduction=reduction), expected)


@FAST
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_poisson_nll_full_is_closed_form(shape, seed):
    g = _gen(seed)
    rates = torch.rand(shape, generator=g, dtype=torch.float64) * 5 + 1e-3
    counts = _counts(shape, g, high=15)
    closed = (rates - counts * torch.log(rates) + torch.lgamma(counts + 1)).sum()
    torch.testing.assert_close(poisson_nll(torch.log(rates), counts, full=True, reduction="sum"), closed)
    # And against scipy's exact Poisson log-pmf.
    ref = -stats.poisson.logpmf(counts.numpy(), rates.numpy()).sum()
    torch.testing.assert_close(poisson_nll(torch.log(rates), counts, full=True, reduction="sum").item(), float(ref))


@FAST
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_poisson_nll_mask_selects_entries(shape, seed):
    g = _gen(seed)
    log_rates = torch.randn(shape, generator=g, dtype=torch.float64)
    counts = _counts(shape, g)
    mask = torch.rand(shape, generator=g) < 0.5
    got = poisson_nll(log_rates, counts, mask)
    if mask.any():
        expected = F.poisson_nll_loss(log_rates[mask], counts[mask], log_input=True, full=False)
        torch.testing.assert_close(got, expected)
    else:
        torch.testing.assert_close(got, torch.zeros((), dtype=torch.float64))
    per_entry = poisson_nll(log_rates, counts, mask, reduction="none")
    assert per_entry.shape == shape
    assert torch.all(per_entry[~mask] == 0)
    torch.testing.assert_close(poisson_nll(log_rates, counts, mask, reduction="sum"), per_entry.sum())


def test_poisson_nll_broadcast_mask_and_padding_inf_do_not_leak():
    log_rates = torch.zeros(2, 4, 3, requires_grad=True)
    counts = torch.ones(2, 4, 3)
    step_mask = torch.tensor([[True], [False], [True], [False]])  # [T, 1] broadcasts over B and N
    with torch.no_grad():
        log_rates[:, 1] = float("inf")  # a padded, unscored bin
    loss = poisson_nll(log_rates, counts, step_mask)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, torch.tensor(1.0))  # exp(0) - 1 * 0
    loss.backward()
    assert torch.isfinite(log_rates.grad).all()
    assert torch.all(log_rates.grad[:, 1] == 0)


def test_poisson_nll_empty_mask_gives_zero_with_zero_grad():
    log_rates = torch.randn(3, 4, requires_grad=True)
    loss = poisson_nll(log_rates, torch.ones(3, 4), torch.zeros(3, 4, dtype=torch.bool))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(log_rates.grad == 0)


def test_poisson_nll_rejects_bad_inputs():
    lr, y = torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="same shape"):
        poisson_nll(lr, torch.zeros(3, 2))
    with pytest.raises(TypeError, match="bool"):
        poisson_nll(lr, y, torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="broadcast"):
        poisson_nll(lr, y, torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="enlarge"):
        poisson_nll(lr, y, torch.ones(5, 2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="reduction"):
        poisson_nll(lr, y, reduction="avg")
    with pytest.raises(TypeError, match="floating"):
        poisson_nll(torch.zeros(2, 3, dtype=torch.int64), y)


# --------------------------------------------------------------------------- count cross-entropy


@pytest.mark.parametrize("n_classes", [2, 3, 8, 22])
def test_poisson_soft_targets_rows_are_distributions_with_tail(n_classes):
    table = poisson_soft_targets(n_classes, dtype=torch.float64)
    assert table.shape == (n_classes, n_classes)
    assert torch.all(table >= 0)
    # Every row sums to 1 -- the last one included (NDT3's own table leaves it zero).
    torch.testing.assert_close(table.sum(-1), torch.ones(n_classes, dtype=torch.float64))
    assert table[-1].sum() > 0.99 and table[-1, -1] > 0.4
    torch.testing.assert_close(table[0], F.one_hot(torch.tensor(0), n_classes).double())
    lam = torch.arange(n_classes).double().numpy()[:, None]
    k = torch.arange(n_classes - 1).double().numpy()[None, :]
    torch.testing.assert_close(table[:, :-1], torch.from_numpy(stats.poisson.pmf(k, lam)))
    torch.testing.assert_close(table[:, -1], torch.from_numpy(stats.poisson.sf(n_classes - 2, lam[:, 0])))


@FAST
@given(shape=shapes, n_classes=st.integers(2, 10), seed=st.integers(0, 2**31 - 1), smooth=st.booleans())
def test_count_cross_entropy_matches_functional(shape, n_classes, seed, smooth):
    g = _gen(seed)
    logits = torch.randn(*shape, n_classes, generator=g, dtype=torch.float64)
    counts = _counts(shape, g, high=n_classes + 4)  # some counts above the last class
    classes = counts.long().clamp(max=n_classes - 1)
    flat_logits = logits.reshape(-1, n_classes)
    if smooth:
        probs = poisson_soft_targets(n_classes, dtype=torch.float64)[classes.reshape(-1)]
        expected = F.cross_entropy(flat_logits, probs)
    else:
        expected = F.cross_entropy(flat_logits, classes.reshape(-1))
    got = count_cross_entropy(logits, counts, n_classes=n_classes, poisson_smoothing=smooth)
    torch.testing.assert_close(got, expected)
    mask = torch.rand(shape, generator=g) < 0.6
    per_entry = count_cross_entropy(logits, counts, poisson_smoothing=smooth, reduction="none")
    masked = count_cross_entropy(logits, counts, mask, poisson_smoothing=smooth)
    expected_masked = per_entry[mask].mean() if mask.any() else torch.zeros((), dtype=torch.float64)
    torch.testing.assert_close(masked, expected_masked)


def test_count_cross_entropy_top_class_is_trainable():
    # With a zero last row (NDT3's defect) the loss for count >= C-1 would be 0 for any logits.
    logits = torch.zeros(1, 5, requires_grad=True)
    loss = count_cross_entropy(logits, torch.tensor([9.0]))
    assert loss.item() > 0
    loss.backward()
    assert logits.grad.abs().sum() > 0


def test_counts_to_classes_and_errors():
    counts = torch.tensor([0, 1, 4, 5, 30])
    assert counts_to_classes(counts, 5).tolist() == [0, 1, 4, 4, 4]
    assert counts_to_classes(counts.float(), 5).dtype == torch.int64
    with pytest.raises(ValueError, match="non-negative"):
        counts_to_classes(torch.tensor([-1.0]), 5)
    with pytest.raises(ValueError, match="integer-valued"):
        counts_to_classes(torch.tensor([0.5]), 5)
    with pytest.raises(ValueError, match="n_classes"):
        count_cross_entropy(torch.zeros(2, 4), torch.zeros(2), n_classes=5)
    with pytest.raises(ValueError, match="class dim"):
        count_cross_entropy(torch.zeros(2, 4), torch.zeros(3))


@FAST
@given(shape=shapes, n_classes=st.integers(2, 12), seed=st.integers(0, 2**31 - 1))
def test_expected_count_from_logits_closed_form(shape, n_classes, seed):
    logits = torch.randn(*shape, n_classes, generator=_gen(seed), dtype=torch.float64)
    p = torch.softmax(logits, -1)
    expected = torch.einsum("...c,c->...", p, torch.arange(n_classes, dtype=torch.float64))
    torch.testing.assert_close(expected_count_from_logits(logits), expected)
    # A near point mass on class k gives k.
    k = n_classes // 2
    peaked = torch.full((n_classes,), -1e4, dtype=torch.float64)
    peaked[k] = 0
    torch.testing.assert_close(expected_count_from_logits(peaked), torch.tensor(float(k), dtype=torch.float64))


# --------------------------------------------------------------------------- MSE


@FAST
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), reduction=st.sampled_from(["mean", "sum", "none"]))
def test_mse_matches_functional(shape, seed, reduction):
    g = _gen(seed)
    pred, target = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    torch.testing.assert_close(mse(pred, target, reduction=reduction), F.mse_loss(pred, target, reduction=reduction))


@FAST
@given(b=st.integers(1, 4), t=st.integers(1, 6), d=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_mse_masked_weighted_closed_form(b, t, d, seed):
    g = _gen(seed)
    pred = torch.randn(b, t, d, generator=g, dtype=torch.float64)
    target = torch.randn(b, t, d, generator=g, dtype=torch.float64)
    weights = torch.rand(b, t, 1, generator=g, dtype=torch.float64) + 0.1  # per time step, like POYO
    mask = torch.rand(b, t, 1, generator=g) < 0.7
    se = (pred - target) ** 2
    m = mask.expand_as(se).double()
    w = weights.expand_as(se)
    expected = (w * m * se).sum() / (w * m).sum() if mask.any() else torch.zeros((), dtype=torch.float64)
    torch.testing.assert_close(mse(pred, target, mask, weights), expected)
    # Per-step weighted mean = weighted mean of the per-step feature means.
    per_step = se.mean(-1)
    torch.testing.assert_close(
        mse(pred, target, weights=weights), (weights[..., 0] * per_step).sum() / weights.sum()
    )
    torch.testing.assert_close(mse(pred, target, mask, weights, reduction="sum"), (w * m * se).sum())
    if mask.any():
        full = mask.expand_as(se)
        torch.testing.assert_close(mse(pred, target, mask), F.mse_loss(pred[full], target[full]))


def test_mse_rejects_bad_weights():
    with pytest.raises(ValueError, match="non-negative"):
        mse(torch.zeros(2, 3), torch.zeros(2, 3), weights=-torch.ones(2, 1))
    with pytest.raises(ValueError, match="broadcast"):
        mse(torch.zeros(2, 3), torch.zeros(2, 3), weights=torch.ones(2))
    with pytest.raises(ValueError, match="same shape"):
        mse(torch.zeros(2, 3), torch.zeros(3, 2))


# --------------------------------------------------------------------------- contrastive


def _nt_xent_loop(z1: torch.Tensor, z2: torch.Tensor, t: float) -> torch.Tensor:
    z = torch.cat([z1, z2])
    n, b = z.shape[0], z1.shape[0]
    total = torch.zeros((), dtype=z.dtype)
    for i in range(n):
        pos = (i + b) % n
        sims = {j: torch.dot(z[i], z[j]) / (z[i].norm() * z[j].norm()) / t for j in range(n) if j != i}
        denom = sum(torch.exp(s) for s in sims.values())
        total = total - torch.log(torch.exp(sims[pos]) / denom)
    return total / n


@FAST
@given(b=st.integers(1, 5), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), t=st.sampled_from([0.07, 0.5, 1.0]))
def test_nt_xent_matches_naive_loop(b, d, seed, t):
    g = _gen(seed)
    z1 = torch.randn(b, d, generator=g, dtype=torch.float64)
    z2 = torch.randn(b, d, generator=g, dtype=torch.float64)
    torch.testing.assert_close(nt_xent(z1, z2, t), _nt_xent_loop(z1, z2, t))
    # Invariant to per-embedding scale (embeddings are L2-normalised).
    torch.testing.assert_close(nt_xent(3 * z1, 0.5 * z2, t), nt_xent(z1, z2, t))


def test_nt_xent_lower_for_identical_views_and_flattens():
    g = _gen(0)
    z = torch.randn(16, 32, generator=g)
    other = torch.randn(16, 32, generator=g)
    assert nt_xent(z, z) < nt_xent(z, other)
    assert nt_xent(z, z + 0.01 * other) < nt_xent(z, other)
    zz = torch.randn(4, 3, 5, generator=g)
    torch.testing.assert_close(nt_xent(zz, zz.flip(0)), nt_xent(zz.reshape(4, 15), zz.flip(0).reshape(4, 15)))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, temperature=0.0)
    with pytest.raises(ValueError, match="same shape"):
        nt_xent(z, other[:3])


def _info_nce_ref(a: torch.Tensor, b: torch.Tensor, t: float) -> tuple[torch.Tensor, torch.Tensor]:
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    n = a.shape[0]
    row = torch.stack([-torch.log_softmax(torch.stack([a[i] @ b[j] / t for j in range(n)]), 0)[i] for i in range(n)])
    col = torch.stack([-torch.log_softmax(torch.stack([b[i] @ a[j] / t for j in range(n)]), 0)[i] for i in range(n)])
    return row.mean(), col.mean()


@FAST
@given(n=st.integers(1, 5), d=st.integers(1, 6), seed=st.integers(0, 2**31 - 1), t=st.sampled_from([0.07, 0.5]))
def test_info_nce_matches_reference(n, d, seed, t):
    g = _gen(seed)
    a = torch.randn(n, d, generator=g, dtype=torch.float64)
    b = torch.randn(n, d, generator=g, dtype=torch.float64)
    row, col = _info_nce_ref(a, b, t)
    torch.testing.assert_close(info_nce(a, b, t, symmetric=False), row)
    torch.testing.assert_close(info_nce(a, b, t), 0.5 * (row + col))
    raw = F.cross_entropy(a @ b.T / t, torch.arange(n))
    torch.testing.assert_close(info_nce(a, b, t, symmetric=False, normalize=False), raw)


def test_info_nce_lower_for_aligned_pairs():
    g = _gen(1)
    a = torch.randn(32, 16, generator=g)
    assert info_nce(a, a) < info_nce(a, torch.randn(32, 16, generator=g))
    assert math.isclose(info_nce(a[:1], torch.randn(1, 16, generator=g)).item(), 0.0, abs_tol=1e-6)
