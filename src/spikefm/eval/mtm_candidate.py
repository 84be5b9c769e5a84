"""MtM's four masked-prediction tasks as protocol candidates: one row per task, each tuned on its own task.

:class:`MaskedTaskCandidate` trains MtM as the co-smoothing candidate does (its objective alternates the four
masking schemes) and scores one task of :mod:`spikefm.eval.mtm_tasks` (``forward_pred``, ``neuron_pred``,
``intra_region``, ``inter_region``) in pooled bits per spike over the entries the task hides. The search
maximises that task's validation score, so each task gets the declared budget, as its baseline
(:mod:`spikefm.eval.baselines.masked`) does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from spikefm.data.recording import DataError, Recording
from spikefm.eval.candidates import Task, TrialScores, masked_metric
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["MaskedTaskCandidate", "masked_task"]

#: What the model reads for each task (held-out units are hidden in every pass).
READS = {
    "forward_pred": "causal prompt: held-in units up to the last 200 ms, which it predicts",
    "neuron_pred": "acausal: the other held-in units over its 1 s window",
    "intra_region": "acausal: the other held-in units of the unit's region",
    "inter_region": "acausal: the held-in units of the other regions",
}


def masked_task(mtm_task: str, window: float = 1.0, bin_size: float = 0.02) -> Task:
    """The protocol task of MtM task ``mtm_task`` on trial-start windows."""
    return Task(masked_metric(mtm_task), window=window, bin_size=bin_size)


@dataclass
class MaskedTaskCandidate(ModelCandidate):
    """``model`` (an MtM) scored on ``mtm_task``; the row is named ``"<model> <mtm_task>"``."""

    mtm_task: str = field(default="neuron_pred", kw_only=True)

    def __post_init__(self) -> None:
        if self.task.metric != masked_metric(self.mtm_task):
            raise ValueError(f"MaskedTaskCandidate({self.mtm_task!r}) scores {masked_metric(self.mtm_task)!r}, "
                             f"got task metric {self.task.metric!r}")
        super().__post_init__()
        self.name = f"{self.model} {self.mtm_task}"
        self.info = READS[self.mtm_task]

    def key(self) -> dict[str, Any]:
        return {**super().key(), "mtm_task": self.mtm_task}

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.mtm_tasks import task_predictions

        out = task_predictions(fitted["model"], rec, tokenizer=fitted["tokenizer"], split=split,
                               window=self.task.window)
        if self.mtm_task not in out:
            raise DataError(f"{rec.session}: MtM task {self.mtm_task} cannot run here (inter-region needs two "
                            "labelled regions)")
        rates, counts = out[self.mtm_task]
        return TrialScores.binned(self.metric, rates, counts)
