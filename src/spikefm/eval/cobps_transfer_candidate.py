"""Co-smoothing on an unseen session as a transfer row: MtM's (and NDT2's) multi-session transfer.

A self-supervised model is pretrained on a world's other sessions (their train trials, every unit's counts, the
fixed :class:`~spikefm.eval.transfer_candidate.Pretraining` recipe, its own objective: MtM alternates its four
masking schemes), then meets the new session: new stitchers / context rows (``add_session``), trained on the first
k train trials of the new session alone (``recalibrate``: the shared network frozen) or with every weight
(``finetune``). On those k trials the held-out units' counts are known (NLB's rule: held-out units are observed on
train trials); on the scored trials they are hidden, and the row is NLB's co-bps of the held-out units predicted from
the held-in ones. Its baselines are NLB's smoothing (acausal and causal) fitted on the same k trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from spikefm.data.recording import Recording
from spikefm.eval.candidates import Task, TrialScores, predicted_heldout_scores
from spikefm.eval.metrics import CO_BPS
from spikefm.eval.transfer_candidate import TransferCandidate

__all__ = ["CoBpsTransferCandidate", "cobps_transfer_task"]


def cobps_transfer_task(model: str, window: float = 1.0, preset: str = "tiny") -> Task:
    """Co-bps of the new session's held-out units, in ``model``'s bins."""
    from spikefm.models.registry import build_config

    return Task(CO_BPS, window=window, bin_size=build_config(model, preset).bin_size)


@dataclass
class CoBpsTransferCandidate(TransferCandidate):
    """``model`` (self-supervised, with ``add_session``) pretrained on the target's world, adapted by ``condition``
    with the target's first ``k`` train trials, scored by co-bps of the target's held-out units."""

    model_task: ClassVar[str] = "self_supervised"
    refusal: ClassVar[str] = "does not predict held-out units' counts"

    def __post_init__(self) -> None:
        if self.task.metric != CO_BPS:
            raise ValueError(f"{type(self).__name__} scores {CO_BPS!r}, got task metric {self.task.metric!r}")
        if self.condition == "zero_shot":
            raise ValueError(f"{self.model}: co-smoothing transfer needs a gradient step (recalibrate or finetune); "
                             "zero-shot identity is a decoder's condition")
        super().__post_init__()
        if not hasattr(self.spec.model_cls, "add_session"):
            raise ValueError(f"{self.model} cannot meet a new session (it has no add_session: its input width is "
                             "its training session's unit count)")
        bin_size = getattr(self.config, "bin_size", None)
        if bin_size is None or abs(bin_size - self.task.bin_size) > 1e-12:
            raise ValueError(f"{self.model} predicts counts per {bin_size} s bin; score it in those bins "
                             f"(got {self.task.bin_size:g})")
        trained = ("the new session's stitchers / context rows trained, the rest frozen"
                   if self.condition == "recalibrate" else "every weight fine-tuned")
        self.info = (f"{'causal' if self.causal else f'acausal ({self.task.window:g} s window)'}: held-in units of "
                     f"the new session; {self.k} train trials (held-out units' counts included): {trained}")

    def _model_config(self):
        from spikefm.models.registry import build_config

        return build_config(self.model, self.preset)

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.evaluate import predict

        out = predict(fitted["model"], fitted["tokenizer"], rec, split=split, window=self.task.window,
                      pack=self.spec.pack)
        return predicted_heldout_scores(self.metric, out, rec.session)
