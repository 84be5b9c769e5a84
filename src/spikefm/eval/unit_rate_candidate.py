"""Co-smoothing for spike-token models that predict units' counts per chunk (the unified model).

Such a model hides the held-out units from its input and reads out each scored unit's log-rate per chunk
(``unit_log_rates`` / ``unit_counts`` rows of ``(window, unit)``). :class:`UnitRateCandidate` scores NLB's co-bps of
the held-out units with the neuron-masking prompt (nothing else hidden, nothing shifted: each chunk's counts from
the state that has read that chunk, as MtM's neuron task), in bins one chunk wide; it is compared with NLB's
smoothing at the same bins. The model is trained exactly as for decoding (its objective alternates the masking
schemes and the behaviour readout): one checkpoint, scored here on a second task.

Identities are label-free: every scoring batch carries the session's first train-split windows, and only those
are pooled for identities (until 2026-12-04 a scored window pooled the *other scored* windows, which read held-out
units' activity on the scored split; NLB allows it on train trials only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from spikefm.data.recording import DataError, Recording
from spikefm.eval.candidates import Task, TrialScores
from spikefm.eval.metrics import CO_BPS
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["UnitRateCandidate", "unit_rate_task"]


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

    def __post_init__(self) -> None:
        if self.task.metric != CO_BPS:
            raise ValueError(f"UnitRateCandidate scores {CO_BPS!r}, got {self.task.metric!r}")
        super().__post_init__()
        from spikefm.models.registry import build_config

        chunk = build_config(self.model, self.preset, **self.overrides).chunk
        if abs(self.task.bin_size - chunk) > 1e-12:
            raise ValueError(f"{self.model} predicts counts per {chunk:g} s chunk; score it in bins of {chunk:g} s "
                             f"(got {self.task.bin_size:g}; e.g. spikefm bench --co-bps-bin {chunk:g})")
        from spikefm.eval.protocol import ablation_name

        self.name = ablation_name(f"{self.model} co-bps", self.overrides)
        self.info = f"{'causal' if self.causal else 'acausal'}: every held-in unit's spikes, held-out units hidden"

    def key(self) -> dict:
        return {**super().key(), "scoring": "train-window calibration", "calibration_windows": self.calibration_windows}

    @torch.no_grad()
    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.data.sampling import TrialWindowSampler
        from spikefm.objectives.unit_masking import UnitMasks
        from spikefm.tokenize.base import collate

        heldout = np.asarray(rec.units.heldout, bool)
        if not heldout.any():
            raise DataError(f"{rec.session}: co-smoothing needs held-out units")
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
            n = batch.unit_offsets.diff()
            none = torch.zeros(batch.batch_size, int(n.max()), dtype=torch.bool)
            pools = torch.arange(batch.batch_size) < len(calibration)  # only train windows are pooled
            out = model(batch, UnitMasks("neuron", none, none, 0), calibration=pools)  # held-out: hidden, scored
            shape = (batch.batch_size, int(heldout.sum()), -1)
            rates.append(out["unit_log_rates"].exp().reshape(shape).transpose(1, 2).numpy()[len(calibration):])
            counts.append(out["unit_counts"].reshape(shape).transpose(1, 2).numpy()[len(calibration):])
        model.train(was_training)
        return TrialScores.binned(self.metric, np.concatenate(rates).astype(np.float64),
                                  np.concatenate(counts).astype(np.float64))
