"""Behaviour objectives on a :class:`~spikefm.tokenize.base.Batch`: decoded vs true behaviour at the queries.

POYO, POSSM, SPINT and NDT2's decoder share this one (it used to be three copies).
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikefm.objectives.losses import mse
from spikefm.tokenize.base import Batch

__all__ = ["behavior_mse", "single_target"]


def single_target(batch: Batch, model: str) -> Tensor:
    """The batch's one behaviour target [B, Q, D]; an error names the targets when there are several."""
    if len(batch.targets) != 1:
        raise ValueError(f"{model} decodes one behaviour series; batch has targets {sorted(batch.targets)}")
    return next(iter(batch.targets.values()))


def behavior_mse(prediction: Tensor, target: Tensor, query_mask: Tensor) -> Tensor:
    """MSE over the valid queries' finite target entries.

    Args:
        prediction: [B, Q, D] decoded behaviour.
        target: [B, Q, D] true behaviour (NaN where unknown).
        query_mask: bool [B, Q] real queries.
    """
    mask = query_mask[..., None] & torch.isfinite(target)
    return mse(prediction, torch.nan_to_num(target), mask)
