"""Co-smoothing and forward prediction for spike-token models that predict units' counts per chunk (unified).

Such a model hides the held-out units from its input and reads out each scored unit's log-rate per chunk
(``unit_log_rates`` / ``unit_counts`` rows of ``(window, unit)``). :class:`UnitRateCandidate` scores NLB's co-bps of
the held-out units with the neuron-masking prompt (nothing else hidden, nothing shifted: each chunk's counts from
the state that has read that chunk, as MtM's neuron task), in bins one chunk wide; it is compared with NLB's
smoothing at the same bins. The model is trained exactly as for decoding (its objective alternates the masking
schemes and the behaviour readout): one checkpoint, scored here on a second task. :class:`UnitForwardCandidate`
scores the same checkpoint on MtM's forward prediction (the last 200 ms of every unit, from the chunks before).

Identities are label-free: every scoring batch carries the session's first train-split windows, and only those
are pooled for identities (until 2026-12-04 a scored window pooled the *other scored* windows, which read held-out
units' activity on the scored split; NLB allows it on train trials only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from spikefm.data.recording import DataError, Recording
from spikefm.eval.baselines.masked import forward_bins
from spikefm.eval.candidates import Task, TrialScores, masked_metric
from spikefm.eval.metrics import CO_BPS
from spikefm.eval.model_candidate import ModelCandidate
from spikefm.tokenize.base import Batch

__all__ = ["UnitRateCandidate", "UnitForwardCandidate", "unit_rate_task"]



def unit_rate_task(model: str, window: float = 1.0, preset: str = "tiny") -> Task:
    """Co-bps in bins of ``model``'s chunk."""
    from spikefm.models.registry import build_config

    return Task(CO_BPS, window=window, bin_size=build_config(model, preset).chunk)


@dataclass
class UnitRateCandidate(ModelCandidate):
    """``model`` trained as :class:`ModelCandidate` (behaviour included), scored on co-bps of held-out units.

    The row is named ``"<model> co-bps"`` (with its fixed overrides, e.g. an ablation, in brackets).

    Args:
        calibration_windows: the scored session's first train-split trial windows put in every scoring batch
            as the only windows identities may pool (NLB's rule: a held-out unit's activity is known on train
            trials only); the scored windows themselves are never pooled.
    """

    calibration_windows: int = 64

    scored_metric: ClassVar[str] = CO_BPS  # the task's metric
    label: ClassVar[str] = "co-bps"  # the row's name after the model's

    def __post_init__(self) -> None:
        if self.task.metric != self.scored_metric:
            raise ValueError(f"{type(self).__name__} scores {self.scored_metric!r}, got {self.task.metric!r}")
        super().__post_init__()
        from spikefm.eval.protocol import ablation_name
        from spikefm.models.registry import build_config

        self.name = ablation_name(f"{self.model} {self.label}", self.overrides)
        self.info = self._reads()
        chunk = build_config(self.model, self.preset, **self.overrides).chunk
        if abs(self.task.bin_size - chunk) > 1e-12:
            raise ValueError(f"{self.model} predicts counts per {chunk:g} s chunk; score it in bins of {chunk:g} s "
                             f"(got {self.task.bin_size:g}; e.g. spikefm bench --co-bps-bin {chunk:g})")

    def _reads(self) -> str:
        return f"{'causal' if self.causal else 'acausal'}: every held-in unit's spikes, held-out units hidden"

    def key(self) -> dict:
        return {**super().key(), "scoring": "train-window calibration", "calibration_windows": self.calibration_windows}

    @torch.no_grad()
    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.data.sampling import TrialWindowSampler
        from spikefm.tokenize.base import collate

        if self.metric == CO_BPS and not np.any(rec.units.heldout):
            raise DataError(f"{rec.session}: co-smoothing needs held-out units (hidden from the input)")
        model, tokenizer = fitted["model"], fitted["tokenizer"]
        windows = TrialWindowSampler([rec], after=self.task.window, split=split).epoch_windows(0)
        calibration = TrialWindowSampler([rec], after=self.task.window, split="train").epoch_windows(0)
        calibration = [tokenizer(rec.window(w.t0, w.t1)) for w in calibration[: self.calibration_windows]]
        was_training = model.training
        model.eval()
        rates, counts = [], []
        for first in range(0, len(windows), 16):
            scored = windows[first:first + 16]
            batch = collate([*calibration, *(tokenizer(rec.window(w.t0, w.t1)) for w in scored)], pack=fitted["pack"])
            pools = torch.arange(batch.batch_size) < len(calibration)  # only train windows are pooled
            batch_rates, batch_counts = self._predict(model, batch, pools)  # [B, T, N'] each
            rates.append(batch_rates[len(calibration):].numpy())
            counts.append(batch_counts[len(calibration):].numpy())
        model.train(was_training)
        return TrialScores.binned(self.metric, np.concatenate(rates).astype(np.float64),
                                  np.concatenate(counts).astype(np.float64))

    def _predict(self, model: torch.nn.Module, batch: Batch, pools: Tensor) -> tuple[Tensor, Tensor]:
        """Held-out units' rates and counts [B, C, N_out] per chunk: neuron-masking prompt, nothing else hidden."""
        from spikefm.objectives.unit_masking import UnitMasks

        none = torch.zeros(batch.batch_size, int(batch.unit_offsets.diff().max()), dtype=torch.bool)
        out = model(batch, UnitMasks("neuron", none, none, 0), calibration=pools)  # held-out: hidden, scored
        shape = (batch.batch_size, -1, out["unit_counts"].shape[1])  # rows are (window, held-out unit)
        rates, counts = out["unit_log_rates"].exp().reshape(shape), out["unit_counts"].reshape(shape)
        return rates.transpose(1, 2), counts.transpose(1, 2)


@dataclass
class UnitForwardCandidate(UnitRateCandidate):
    """``model`` trained as :class:`ModelCandidate`, scored on MtM's forward prediction (``forward_pred bps``):
    every unit's counts in the last 200 ms chunks of each trial window, predicted ``h`` = 1..n chunks ahead of the
    last visible chunk (the causal prompt with ``shift = h``; a recurrent core never reads later chunks, and
    held-out units are hidden in every pass, as MtM's task hides them). Compared with
    :class:`~spikefm.eval.baselines.masked.ForwardGLM` and ``mtm:forward_pred`` in the same bins. The row is named
    ``"<model> forward_pred"``."""

    scored_metric: ClassVar[str] = masked_metric("forward_pred")
    label: ClassVar[str] = "forward_pred"

    def _reads(self) -> str:
        n = forward_bins(self.task.bin_size)
        return f"causal: held-in units up to the last {n} chunks, which it predicts {n} to 1 chunks ahead"

    def _predict(self, model: torch.nn.Module, batch: Batch, pools: Tensor) -> tuple[Tensor, Tensor]:
        """Every unit's rates and counts [B, n_forward, N] in the window's last ``n_forward`` chunks."""
        from spikefm.objectives.unit_masking import UnitMasks

        n_units, n_forward = batch.unit_offsets.diff(), forward_bins(self.task.bin_size)
        if len(set(n_units.tolist())) != 1:
            raise DataError("forward prediction scores windows of one session (equal unit counts)")
        valid = torch.ones(batch.batch_size, int(n_units[0]), dtype=torch.bool)
        none = torch.zeros_like(valid)
        rates, counts = [], []
        for ahead in range(1, n_forward + 1):
            out = model(batch, UnitMasks("causal", none, valid, ahead), calibration=pools)
            shape = (batch.batch_size, int(n_units[0]), out["unit_counts"].shape[1])  # rows: (window, unit)
            if shape[2] <= n_forward:
                raise DataError(f"forward prediction needs more than {n_forward} chunks per window, got {shape[2]}")
            target = shape[2] - n_forward + ahead - 1  # predicted from chunk target - ahead, the last visible one
            rates.append(out["unit_log_rates"].exp().reshape(shape)[..., target])
            counts.append(out["unit_counts"].reshape(shape)[..., target])
        return torch.stack(rates, 1), torch.stack(counts, 1)
