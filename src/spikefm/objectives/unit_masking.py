"""MtM's four masking schemes at the level of units, for models whose input is spike tokens.

A binned model hides entries of a ``[B, T, N]`` count array; a spike-token model hides *units*:
every token of a hidden unit is removed from the input, and the model predicts scored units'
spike counts from what is left. :func:`unit_masks` reuses :mod:`spikefm.objectives.masking`'s
choice of units (same ratios, same region picking) on a one-step unit array, so the schemes mean
exactly what they mean for MtM:

* ``neuron``: 30% of the units hidden and scored;
* ``causal``: nothing hidden; every unit scored, each chunk predicted from earlier chunks only
  (``shift = 1``; on a recurrent core the whole window is causal, so every chunk is a target);
* ``intra_region``: one region picked, 30% of its units hidden and scored, the other regions hidden
  (not scored): the region predicts itself;
* ``inter_region``: one region picked, all its units hidden and scored: predicted from the others.

Region schemes are skipped (:func:`eligible_schemes`) unless every window of the batch has at
least two regions. :func:`draw_unit_masks` draws one scheme for a whole batch (MtM alternates
schemes per batch) and :func:`flat_units` aligns its per-window flags with ``batch.unit_keys``.

Shape legend: B windows, U most units in a window.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from spikefm.objectives.masking import MaskingScheme, apply_scheme
from spikefm.tokenize.base import Batch

__all__ = ["UnitMasks", "unit_masks", "eligible_schemes", "region_ids", "draw_unit_masks", "flat_units"]


class UnitMasks(NamedTuple):
    """Which units one scheme hides and scores.

    Attributes:
        scheme: the scheme's name.
        hidden: bool [B, U] units whose every token is removed from the input.
        scored: bool [B, U] units whose counts the loss scores.
        shift: chunks between the last visible chunk and the predicted one (1 = forward prediction).
    """

    scheme: str
    hidden: Tensor
    scored: Tensor
    shift: int


def region_ids(regions: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per window, int region ids [U_b] from region names (``""`` = unknown counts as one region)."""
    return [np.unique(np.asarray(r).astype(str), return_inverse=True)[1].reshape(-1) for r in regions]


def eligible_schemes(schemes: Sequence[str], regions: Sequence[np.ndarray]) -> list[str]:
    """``schemes`` minus the region schemes when some window has fewer than two regions."""
    multi = all(np.unique(r).size >= 2 for r in regions)
    return [s for s in schemes if multi or not MaskingScheme(s).needs_regions]


def unit_masks(
    scheme: str, unit_valid: Tensor, regions: Tensor | None = None, *, generator: torch.Generator | None = None
) -> UnitMasks:
    """The units ``scheme`` hides and scores in each window.

    Args:
        scheme: ``"neuron"``, ``"causal"``, ``"intra_region"`` or ``"inter_region"``.
        unit_valid: bool [B, U] real units (False on padding).
        regions: long [B, U] region ids (any value on padding), needed by the region schemes.
        generator: source of randomness.
    """
    scheme = MaskingScheme(scheme).value
    if scheme == MaskingScheme.CAUSAL.value:
        return UnitMasks(scheme, torch.zeros_like(unit_valid), unit_valid.clone(), 1)
    x = unit_valid[:, None, :].float()  # [B, 1, U]: one "time step" of ones per real unit
    region = None if regions is None else torch.where(unit_valid, regions, torch.full_like(regions, -1))
    result = apply_scheme(scheme, x, regions=region, valid=unit_valid, generator=generator)
    hidden = (result.masked_input[:, 0] == 0) & unit_valid  # zero_ratio 1: every hidden unit reads 0
    return UnitMasks(scheme, hidden, result.mask[:, 0] & unit_valid, 0)


def draw_unit_masks(batch: Batch, schemes: Sequence[str], training: bool) -> UnitMasks:
    """One scheme for the whole batch: in training drawn uniformly from the ``schemes`` the batch's
    regions allow; in evaluation (or when none is allowed) ``causal`` forward prediction, scoring
    every unit in evaluation and none when training has no scheme (behaviour only).

    Region labels are ``batch.unit_extras["region"]``.
    """
    regions = region_ids(np.split(np.asarray(batch.unit_extras["region"]), batch.unit_offsets[1:-1].tolist()))
    pool = eligible_schemes(schemes, regions) if training else ["causal"]
    scheme = pool[int(torch.randint(len(pool), ()))] if pool else "causal"
    n = batch.unit_offsets.diff()
    valid = torch.arange(int(n.max()), device=n.device)[None] < n[:, None]  # [B, U]
    region = torch.full(valid.shape, -1, dtype=torch.long)
    region[valid] = torch.as_tensor(np.concatenate(regions), dtype=torch.long)
    masks = unit_masks(scheme, valid, region)
    return masks if pool else masks._replace(scored=torch.zeros_like(valid))


def flat_units(per_window: Tensor, batch: Batch) -> Tensor:
    """[B, U] per-window unit flags -> [sum U] aligned with ``batch.unit_keys``."""
    n = batch.unit_offsets.diff()
    return per_window[torch.arange(per_window.shape[1], device=n.device)[None] < n[:, None]]
