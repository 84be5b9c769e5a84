"""Training losses as plain functions with explicit masks.

A model's ``forward`` returns predictions; these functions turn predictions and
targets into a scalar (or per-entry) loss. Every loss takes an optional boolean
``mask`` that selects the entries to score (``True`` = scored), broadcastable to
the per-entry loss shape, so masked modelling (NDT1, MtM) and padding are handled
in one place.

Shape legend: ``B`` batch, ``T`` time bins, ``N`` neurons, ``C`` count classes,
``D`` feature dimension. ``...`` is any leading shape.

Reductions: ``"mean"`` averages over the selected entries (an empty selection gives
``0``, not NaN, with a zero gradient), ``"sum"`` adds them, ``"none"`` returns the
per-entry loss with unselected entries set to ``0``.

>>> import torch
>>> log_rates = torch.zeros(2, 3)
>>> counts = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 0.0]])
>>> float(poisson_nll(log_rates, counts))  # exp(0) - y * 0 = 1 everywhere
1.0
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "poisson_nll",
    "count_cross_entropy",
    "counts_to_classes",
    "expected_count_from_logits",
    "poisson_soft_targets",
    "mse",
    "nt_xent",
    "info_nce",
]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def _expand_mask(mask: Tensor, shape: torch.Size, name: str) -> Tensor:
    """Check a boolean mask broadcasts to ``shape`` and return it expanded to ``shape``."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{name}: mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name}: mask must be a bool tensor (True = scored), got {mask.dtype}; pass mask.bool()")
    try:
        out_shape = torch.broadcast_shapes(mask.shape, shape)
    except RuntimeError as err:
        raise ValueError(f"{name}: mask of shape {tuple(mask.shape)} does not broadcast to {tuple(shape)}") from err
    if out_shape != shape:
        raise ValueError(
            f"{name}: mask of shape {tuple(mask.shape)} would enlarge the loss shape {tuple(shape)} "
            f"to {tuple(out_shape)}"
        )
    return mask.expand(shape)


def _reduce(loss: Tensor, mask: Tensor | None, reduction: str, name: str, weights: Tensor | None = None) -> Tensor:
    """Apply an optional mask and per-entry weights, then reduce.

    ``mean`` divides by the number of selected entries, or by the selected weight
    total when ``weights`` is given (a weighted mean).
    """
    _check_reduction(reduction)
    if mask is not None:
        mask = _expand_mask(mask, loss.shape, name)
    if weights is not None:
        loss = loss * weights
    if mask is not None:
        # where, not multiply: an unselected inf/NaN (e.g. a padded bin) must not leak into the sum.
        loss = torch.where(mask, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    if weights is not None:
        w = weights.expand(loss.shape)
        denom = (torch.where(mask, w, torch.zeros((), dtype=w.dtype, device=w.device)) if mask is not None else w).sum()
    elif mask is not None:
        denom = mask.sum()
    else:
        denom = torch.tensor(loss.numel(), device=loss.device)
    # At least float32 for the count (float16 overflows past 65504 entries); an empty
    # selection has total 0, so clamping the denominator returns 0 instead of NaN.
    acc = torch.promote_types(loss.dtype, torch.float32)
    return (total.to(acc) / denom.to(acc).clamp(min=torch.finfo(acc).tiny)).to(loss.dtype)


def poisson_nll(
    log_rates: Tensor,
    counts: Tensor,
    mask: Tensor | None = None,
    *,
    full: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """Poisson negative log-likelihood from log expected counts per bin.

    Per entry: ``exp(log_rate) - count * log_rate``, plus ``lgamma(count + 1)`` when
    ``full`` (the exact constant, not Stirling's approximation that
    ``F.poisson_nll_loss(full=True)`` uses). ``full=True`` gives the NLL that
    NLB's bits/spike is computed from.

    Args:
        log_rates: ``[...]`` natural log of the expected count per bin (not Hz).
        counts: ``[...]`` observed counts, same shape as ``log_rates`` (any numeric dtype).
        mask: optional bool, broadcastable to ``[...]``; ``True`` entries are scored.
        full: add ``lgamma(counts + 1)``.
        reduction: ``"mean"`` over selected entries, ``"sum"``, or ``"none"`` (``[...]``).

    Returns:
        A scalar, or ``[...]`` for ``reduction="none"``.
    """
    if log_rates.shape != counts.shape:
        raise ValueError(
            f"poisson_nll: log_rates {tuple(log_rates.shape)} and counts {tuple(counts.shape)} must have the same shape"
        )
    if not log_rates.is_floating_point():
        raise TypeError(f"poisson_nll: log_rates must be floating point, got {log_rates.dtype}")
    counts = counts.to(log_rates.dtype)
    if mask is not None:
        # Zero unscored inputs first: an overflowing padded log-rate would otherwise send a
        # NaN gradient (inf * 0) through the masked-out branch.
        log_rates = torch.where(_expand_mask(mask, log_rates.shape, "poisson_nll"), log_rates, 0.0)
    loss = torch.exp(log_rates) - counts * log_rates
    if full:
        loss = loss + torch.lgamma(counts + 1)
    return _reduce(loss, mask, reduction, "poisson_nll")


def counts_to_classes(counts: Tensor, n_classes: int) -> Tensor:
    """Map spike counts to class indices ``0..n_classes-1``, clipping at the last class.

    Args:
        counts: ``[...]`` non-negative integer-valued counts (any numeric dtype).
        n_classes: number of classes ``C``; counts ``>= C - 1`` map to ``C - 1``.

    Returns:
        ``[...]`` int64 class indices.
    """
    if n_classes < 2:
        raise ValueError(f"counts_to_classes: n_classes must be >= 2, got {n_classes}")
    if counts.is_floating_point():
        if not torch.all(counts == torch.round(counts)):
            raise ValueError("counts_to_classes: counts must be integer-valued (spike counts per bin)")
    if torch.any(counts < 0):
        raise ValueError("counts_to_classes: counts must be non-negative")
    return counts.to(torch.int64).clamp(max=n_classes - 1)


def poisson_soft_targets(
    n_classes: int, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> Tensor:
    """NDT3's Poisson-softened target table, with the tail mass kept.

    Row ``i`` is the pmf of ``Poisson(i)`` over ``0..C-2``; the last column holds
    ``P(K >= C-1)``, so every row (the last included) sums to 1. NDT3's own table
    leaves the last row zero, which makes the top class untrainable; we do not copy
    that. Row 0 is the point mass on class 0.

    Args:
        n_classes: ``C >= 2``.
        dtype, device: of the returned table (computed in float64 first).

    Returns:
        ``[C, C]`` table; ``table[i]`` is the target distribution for true class ``i``.
    """
    if n_classes < 2:
        raise ValueError(f"poisson_soft_targets: n_classes must be >= 2, got {n_classes}")
    k = torch.arange(n_classes, dtype=torch.float64)
    lam = k[:, None]  # [C, 1] Poisson mean per row
    # xlogy gives 0 * log(0) = 0, so row 0 is the point mass on class 0.
    pmf = torch.exp(torch.xlogy(k[None, :], lam) - lam - torch.lgamma(k[None, :] + 1))  # [C, C]
    # P(K >= C-1) = regularised lower incomplete gamma P(C-1, lam); exact, no 1 - cdf cancellation.
    tail = torch.special.gammainc(torch.full_like(k, n_classes - 1.0), k)  # [C]
    table = torch.cat([pmf[:, :-1], tail[:, None]], dim=1)
    return table.to(dtype=dtype, device=device)


def count_cross_entropy(
    logits: Tensor,
    counts: Tensor,
    mask: Tensor | None = None,
    *,
    n_classes: int | None = None,
    poisson_smoothing: bool = True,
    reduction: str = "mean",
) -> Tensor:
    """NDT3's spike-count classification loss.

    Counts become classes ``0..C-1`` (clipped at ``C-1``; NDT3 uses ``C = 22``). With
    ``poisson_smoothing`` the target for true class ``i`` is the Poisson(i) pmf
    (:func:`poisson_soft_targets`, tail mass in the last class), so predicting a
    neighbouring count costs less than a distant one; without it, plain cross-entropy.

    Args:
        logits: ``[..., C]`` unnormalised class scores.
        counts: ``[...]`` non-negative integer-valued counts.
        mask: optional bool, broadcastable to ``[...]``; ``True`` entries are scored.
        n_classes: optional check that ``logits.shape[-1] == n_classes``.
        poisson_smoothing: use Poisson-softened targets instead of one-hot.
        reduction: ``"mean"`` over selected entries, ``"sum"``, or ``"none"`` (``[...]``).

    Returns:
        A scalar, or ``[...]`` for ``reduction="none"``.
    """
    c = logits.shape[-1]
    if n_classes is not None and n_classes != c:
        raise ValueError(f"count_cross_entropy: n_classes={n_classes} but logits have {c} classes in the last dim")
    if logits.shape[:-1] != counts.shape:
        raise ValueError(
            f"count_cross_entropy: logits {tuple(logits.shape)} must be counts {tuple(counts.shape)} plus a class dim"
        )
    classes = counts_to_classes(counts, c)  # [...]
    if poisson_smoothing:
        table = poisson_soft_targets(c, dtype=logits.dtype, device=logits.device)  # [C, C]
        target = table[classes]  # [..., C]
        loss = -(target * F.log_softmax(logits, dim=-1)).sum(-1)  # [...]
    else:
        loss = F.cross_entropy(logits.reshape(-1, c), classes.reshape(-1), reduction="none").reshape(classes.shape)
    return _reduce(loss, mask, reduction, "count_cross_entropy")


def expected_count_from_logits(logits: Tensor) -> Tensor:
    """Expected count under the class distribution: ``sum_k softmax(logits)_k * k``.

    The last class stands for "C-1 or more" and counts as ``C-1``, so this is a
    lower bound when mass sits in the top class.

    Args:
        logits: ``[..., C]``.

    Returns:
        ``[...]`` expected counts per bin (use ``log`` of it as a Poisson log-rate).
    """
    values = torch.arange(logits.shape[-1], dtype=logits.dtype, device=logits.device)
    return (torch.softmax(logits, dim=-1) * values).sum(-1)


def mse(
    pred: Tensor,
    target: Tensor,
    mask: Tensor | None = None,
    weights: Tensor | None = None,
    *,
    reduction: str = "mean",
) -> Tensor:
    """Masked, weighted mean squared error (POYO's weighted MSE).

    ``mean`` is ``sum(w * m * (pred - target)^2) / sum(w * m)`` with ``w`` and ``m``
    broadcast to the full shape, so weights ``[B, T, 1]`` on ``[B, T, D]`` weight
    time steps and average over ``D``.

    Args:
        pred: ``[...]`` predictions.
        target: ``[...]`` targets, same shape.
        mask: optional bool, broadcastable to ``[...]``; ``True`` entries are scored.
        weights: optional non-negative weights, broadcastable to ``[...]``
            (torch broadcasting: for per-sample weights ``[B]`` on ``[B, D]`` pass ``w[:, None]``).
        reduction: ``"mean"`` (weighted), ``"sum"`` (weighted), or ``"none"`` (``[...]``).

    Returns:
        A scalar, or ``[...]`` for ``reduction="none"``.
    """
    if pred.shape != target.shape:
        raise ValueError(f"mse: pred {tuple(pred.shape)} and target {tuple(target.shape)} must have the same shape")
    diff = pred - target.to(pred.dtype)
    if mask is not None:
        diff = torch.where(_expand_mask(mask, diff.shape, "mse"), diff, 0.0)  # no NaN gradient from padding
    loss = diff**2
    if weights is not None:
        weights = weights.to(dtype=loss.dtype, device=loss.device)
        try:
            out_shape = torch.broadcast_shapes(weights.shape, loss.shape)
        except RuntimeError as err:
            raise ValueError(f"mse: weights {tuple(weights.shape)} do not broadcast to {tuple(loss.shape)}") from err
        if out_shape != loss.shape:
            raise ValueError(f"mse: weights {tuple(weights.shape)} would enlarge the loss shape {tuple(loss.shape)}")
        if torch.any(weights < 0):
            raise ValueError("mse: weights must be non-negative")
    return _reduce(loss, mask, reduction, "mse", weights=weights)


def _flat_pair(a: Tensor, b: Tensor, name: str) -> tuple[Tensor, Tensor]:
    if a.shape != b.shape:
        raise ValueError(f"{name}: the two inputs must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.ndim < 2 or a.shape[0] < 1:
        raise ValueError(f"{name}: inputs must be [B, D] (or [B, ...], flattened) with B >= 1, got {tuple(a.shape)}")
    return a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)


def _check_temperature(temperature: float, name: str) -> None:
    if not (temperature > 0 and math.isfinite(temperature)):
        raise ValueError(f"{name}: temperature must be a positive finite number, got {temperature}")


def nt_xent(z1: Tensor, z2: Tensor, temperature: float = 0.07) -> Tensor:
    """SimCLR NT-Xent between two views of the same batch (STNDT uses temperature 0.07).

    The ``2B`` embeddings are L2-normalised; each one's positive is the same sample's
    other view and its negatives are the other ``2B - 2`` embeddings (itself excluded).
    The loss is the mean over all ``2B`` anchors of
    ``-log softmax(sim / temperature)[positive]``.

    Args:
        z1: ``[B, D]`` (or ``[B, ...]``, flattened per sample) first view.
        z2: same shape, second view.
        temperature: softmax temperature ``> 0``.

    Returns:
        Scalar loss.
    """
    _check_temperature(temperature, "nt_xent")
    z1, z2 = _flat_pair(z1, z2, "nt_xent")
    b = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2], dim=0), dim=-1)  # [2B, D]
    sim = z @ z.T / temperature  # [2B, 2B]
    self_mask = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    idx = torch.arange(b, device=z.device)
    positives = torch.cat([idx + b, idx])  # anchor i <-> i + B
    return F.cross_entropy(sim, positives)


def info_nce(
    a: Tensor,
    b: Tensor,
    temperature: float = 0.5,
    symmetric: bool = True,
    *,
    normalize: bool = True,
) -> Tensor:
    """CLIP-style InfoNCE between paired embeddings (Neuroformer uses temperature 0.5).

    Logits are ``a @ b.T / temperature`` with the diagonal as positives;
    cross-entropy over rows (``a -> b``), averaged with the column direction
    (``b -> a``) when ``symmetric``.

    Args:
        a: ``[B, D]`` embeddings of one modality.
        b: ``[B, D]`` embeddings of the paired modality (row ``i`` pairs with ``a[i]``).
        temperature: softmax temperature ``> 0``.
        symmetric: average both directions (CLIP); else only ``a -> b``.
        normalize: L2-normalise ``a`` and ``b`` first (CLIP and Neuroformer do).

    Returns:
        Scalar loss.
    """
    _check_temperature(temperature, "info_nce")
    a, b = _flat_pair(a, b, "info_nce")
    if normalize:
        a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature  # [B, B]
    labels = torch.arange(a.shape[0], device=a.device)
    loss = F.cross_entropy(logits, labels)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.T, labels))
    return loss
