"""Forward prediction for a binned masked model (NDT1): its last 200 ms hidden in training and scoring alike.

MtM predicts the last 200 ms of each trial window with its causal prompt (``mtm:forward_pred``), and the unified
model from the chunks before them (``unified:forward_pred``). NLB's NDT1 does fp-bps by training with the forward
bins always in its input, zeroed, and scored in its loss. :class:`BinnedForwardCandidate` trains a binned model so
(``forward_bins`` set from the task's bins) and scores every unit's counts in those bins from the rest of the
window, held-out units hidden in every pass: the information MtM's forward task gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from spikefm.data.recording import DataError, Recording
from spikefm.eval.baselines.masked import forward_bins
from spikefm.eval.candidates import TrialScores, masked_metric
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["BinnedForwardCandidate"]


@dataclass
class BinnedForwardCandidate(ModelCandidate):
    """``model`` (a binned model with a ``forward_bins`` option, e.g. NDT1) trained with the window's last 200 ms
    hidden from its input and scored on them (``forward_pred bps``); the row is ``"<model> forward_pred"``."""

    def __post_init__(self) -> None:
        if self.task.metric != masked_metric("forward_pred"):
            raise ValueError(f"BinnedForwardCandidate scores {masked_metric('forward_pred')!r}, "
                             f"got {self.task.metric!r}")
        self.overrides = {**self.overrides, "forward_bins": forward_bins(self.task.bin_size)}
        super().__post_init__()
        self.name = f"{self.model} forward_pred"
        self.info = (f"held-in units up to the last {self.overrides['forward_bins']} bins, which it predicts "
                     "(hidden from its input in training too)")

    @torch.no_grad()
    def _scores(self, fitted: dict[str, Any], rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.mtm_tasks import _trial_batch

        model, n = fitted["model"], self.overrides["forward_bins"]
        batch = _trial_batch(rec, fitted["tokenizer"], split, self.task.window)
        lengths = batch.mask.sum(1)
        if int(lengths.min()) != int(lengths.max()) or int(lengths.min()) <= n:
            raise DataError(f"{rec.session}: forward prediction needs windows of equal length over {n} bins, got "
                            f"{sorted(set(lengths.tolist()))}")
        was_training = model.training
        model.eval()
        out = model(batch)
        model.train(was_training)
        hidden = model.forward_mask(batch.mask)  # [K, T]: the scored bins, hidden from the input
        rates = out["log_rates"].exp()[hidden].view(len(lengths), n, -1)
        counts = out["counts"][hidden].view(len(lengths), n, -1)
        return TrialScores.binned(self.metric, rates.numpy().astype(np.float64), counts.numpy().astype(np.float64))
