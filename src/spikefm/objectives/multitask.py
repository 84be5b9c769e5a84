"""A multi-task objective over named behaviour readouts and per-unit spike-count readouts (POYO+ and MtM).

A model returns ``values/<key>`` [B, Q, D] per behaviour key it decodes and, for the units it
scores, ``unit_log_rates`` / ``unit_counts`` / ``unit_count_mask`` [N, C] and ``count_weight``.
The loss is the behaviour MSE of every key the batch has targets for plus ``count_weight`` x the
masked Poisson NLL of the counts (self-supervised and supervised jointly; a batch without
behaviour trains the counts alone).
"""

from __future__ import annotations

from torch import Tensor

from spikefm.objectives.behavior import behavior_mse
from spikefm.objectives.losses import poisson_nll
from spikefm.tokenize.base import Batch

__all__ = ["multitask_objective"]


def multitask_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Behaviour MSE per key (finite targets at real queries) + ``count_weight`` x masked Poisson NLL.

    Returns:
        (loss, metrics): ``count_nll`` and ``<key>/mse`` per decoded key, detached.
    """
    counts = poisson_nll(outputs["unit_log_rates"], outputs["unit_counts"], outputs["unit_count_mask"])
    loss, metrics = outputs["count_weight"] * counts, {"count_nll": counts.detach()}
    for key in (k.split("/", 1)[1] for k in outputs if k.startswith("values/")):
        if key in batch.targets:
            mse = behavior_mse(outputs[f"values/{key}"], batch.targets[key], batch.query_mask)
            loss, metrics[f"{key}/mse"] = loss + mse, mse.detach()
    return loss, metrics
