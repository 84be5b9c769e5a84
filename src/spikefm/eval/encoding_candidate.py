"""NEDS's encoding as a protocol row: every unit's spike counts from the behaviour alone.

NEDS trains one model for both directions (its multi-task masking). In encoding mode every spike token is hidden
and the behaviour of the window is given (:func:`~spikefm.eval.neds_tasks.predict_neds`); the row scores the
expected counts per bin of every unit against the recorded counts, NLB's pooled bits per spike (``enc bps``).
The model's knobs are chosen on the validation trials' encoding score. Its baseline with the same information is
:class:`~spikefm.eval.baselines.BehaviorGLM` (the behaviour around each bin, up to the whole window, no spikes).
"""

from __future__ import annotations

from dataclasses import dataclass

from spikefm.data.recording import Recording
from spikefm.eval.candidates import TrialScores, task_arrays
from spikefm.eval.metrics import ENC_BPS
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["EncodingCandidate"]


@dataclass
class EncodingCandidate(ModelCandidate):
    """A model with an encoding mode (NEDS), trained as any :class:`ModelCandidate`, scored with every spike hidden
    (row ``"<model> encoding"``)."""

    def __post_init__(self) -> None:
        if self.task.metric != ENC_BPS:
            raise ValueError(f"EncodingCandidate scores {ENC_BPS!r}, got task metric {self.task.metric!r}")
        if self.model != "neds":
            raise ValueError(f"{self.model} has no encoding mode (NEDS has: model(batch, mode='encoding'))")
        super().__post_init__()
        self.name, self.causal = f"{self.model} encoding", False
        self.info = f"acausal: the behaviour of its {self.task.window:g} s window, every spike hidden"

    def key(self) -> dict:
        return {**super().key(), "scoring": "encoding"}  # the same training as a plain model row, scored otherwise

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.neds_tasks import predict_neds

        out = predict_neds(fitted["model"], fitted["tokenizer"], rec, split=split, window=self.task.window)
        counts = task_arrays(self.task, rec, split).counts
        if out.encoding_rates.shape != counts.shape or (out.counts != counts).any():
            raise RuntimeError(f"{self.model}: its bins {out.counts.shape} do not match the task's {counts.shape} on "
                               f"{rec.session}'s {split} split; set the model's bin_size to {self.task.bin_size:g}")
        return TrialScores.binned(self.metric, out.encoding_rates, counts)
