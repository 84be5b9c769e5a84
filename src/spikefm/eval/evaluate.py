"""Run a trained model over one split's trials and score it with the NLB metrics.

Self-supervised models (``outputs["log_rates"]`` [B, T, N]) are scored by co-bps on held-out
units; decoders (``outputs["behavior"]`` [B, Q, D]) by variance-weighted behaviour R2 at the
query times.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from spikefm.data.dataset import WindowDataset
from spikefm.data.recording import Recording
from spikefm.data.sampling import TrialWindowSampler
from spikefm.eval.metrics import co_bps, decoding_r2
from spikefm.tokenize.base import collate

__all__ = ["Predictions", "predict", "score"]


@dataclass
class Predictions:
    """A model's outputs over the windows of one split of one recording.

    Attributes:
        rates: float [K, T, N] expected counts per bin (self-supervised models), else None.
        counts: int [K, T, N] the observed counts in the same bins, else None.
        heldout: bool [N] held-out units, else None.
        behavior: float [K, Q, D] decoded behaviour (decoders), else None.
        behavior_true: float [K, Q, D] the true behaviour at the queries, else None.
        query_mask: bool [K, Q] valid queries, else None.
        starts: float [K] window starts (absolute seconds).
        query_times: float [K, Q] query times in seconds from each window's start (decoders), else None.
    """

    rates: np.ndarray | None
    counts: np.ndarray | None
    heldout: np.ndarray | None
    behavior: np.ndarray | None
    behavior_true: np.ndarray | None
    query_mask: np.ndarray | None
    starts: np.ndarray
    query_times: np.ndarray | None = None


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    tokenizer: Callable,
    recording: Recording,
    *,
    split: str | None = "test",
    window: float = 1.0,
    align: str = "start",
    before: float = 0.0,
    batch_size: int = 32,
    pack: bool = False,
) -> Predictions:
    """Outputs of ``model`` (in eval mode) on every trial window of ``split``."""
    sampler = TrialWindowSampler([recording], align=align, before=before, after=window - before, split=split)
    loader = DataLoader(
        WindowDataset([recording], tokenizer), sampler=sampler, batch_size=batch_size,
        collate_fn=partial(collate, pack=pack),
    )  # fmt: skip
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    device = next(model.parameters()).device
    target = getattr(model, "behavior_target", None)  # a multi-task decoder names the target `behavior` decodes
    for batch in loader:
        outputs = model(batch.to(device))
        _collect(parts, outputs, batch, target)
    model.train(was_training)
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    return Predictions(
        rates=joined.get("rates"),
        counts=joined.get("counts"),
        heldout=recording.units.heldout.copy() if "rates" in joined else None,
        behavior=joined.get("behavior"),
        behavior_true=joined.get("behavior_true"),
        query_mask=joined.get("query_mask"),
        starts=np.array([spec.t0 for spec in sampler.epoch_windows(0)]),
        query_times=joined.get("query_times"),
    )


def _collect(parts: dict[str, list[np.ndarray]], outputs: dict, batch, target: str | None = None) -> None:
    if "log_rates" in outputs:
        parts.setdefault("rates", []).append(outputs["log_rates"].float().exp().cpu().numpy())
        # A model whose tokens are not count vectors (NDT2 patches) returns the counts it scored.
        counts = outputs["counts"] if "counts" in outputs else batch.values
        parts.setdefault("counts", []).append(counts.cpu().numpy())
    if "behavior" in outputs:
        (key,) = batch.targets if target is None else (target,)
        parts.setdefault("behavior", []).append(outputs["behavior"].float().cpu().numpy())
        parts.setdefault("behavior_true", []).append(batch.targets[key].cpu().numpy())
        parts.setdefault("query_mask", []).append(batch.query_mask.cpu().numpy())
        parts.setdefault("query_times", []).append(batch.query_timestamps.double().cpu().numpy())


def score(predictions: Predictions) -> dict[str, float]:
    """NLB-style scores: ``co-bps`` (held-out units) and/or ``vel R2`` (decoded behaviour)."""
    scores: dict[str, float] = {}
    if predictions.rates is not None and predictions.heldout is not None and predictions.heldout.any():
        held = predictions.heldout
        scores["co-bps"] = co_bps(predictions.rates[..., held], predictions.counts[..., held])
    if predictions.behavior is not None:
        valid = predictions.query_mask & np.all(np.isfinite(predictions.behavior_true), axis=-1)
        scores["vel R2"] = decoding_r2(predictions.behavior[valid], predictions.behavior_true[valid])
    return scores


def score_many(
    model: torch.nn.Module, tokenizer: Callable, recordings: Sequence[Recording], **kwargs
) -> dict[str, dict[str, float]]:
    """``{session: scores}`` for each recording."""
    return {rec.session: score(predict(model, tokenizer, rec, **kwargs)) for rec in recordings}
