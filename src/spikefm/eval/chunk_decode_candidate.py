"""Neuroformer's behaviour decoding as a protocol row, against Wiener filters that read what it reads.

Neuroformer decodes the behaviour samples of each current chunk (50 ms in the tiny preset) from the spikes of the
chunk and of the past window before it (:func:`~spikefm.eval.generation.decode_behavior_by_trial`): a sample at
the chunk's start reads up to one chunk ahead, and no sample reads more than past + current (100 ms). So the row
is acausal, and its equal-information baselines are Wiener filters on bins a fifth of a chunk wide (10 ms) whose
history and look-ahead fit inside that span: the acausal one reads at most ``(past + current) / bin`` bins, at
most one chunk of them ahead; the causal one at most the same span of history and nothing ahead. Both are tuned
on validation like every baseline; the Kalman filter is left out, since its state carries the whole past.

The model trains as its generation row does (random past + current windows, its own objective: next-spike
prediction plus the behaviour MSE). Every decoded sample is a recorded behaviour sample of the trial window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spikefm.data.recording import Recording
from spikefm.eval.baselines.wiener import Wiener
from spikefm.eval.candidates import DECODING_METRICS, BaselineCandidate, Task, TrialScores
from spikefm.eval.metrics import DECODE_R2
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["BINS_PER_CHUNK", "ChunkDecodeCandidate", "chunk_decode_baselines", "chunk_decode_task"]

BINS_PER_CHUNK = 5  # the baselines' bins: a fifth of a chunk (10 ms at Neuroformer's 50 ms chunks)


def _reads(model: str, preset: str = "tiny", **overrides: Any) -> tuple[float, float]:
    from spikefm.models.registry import build_config

    config = build_config(model, preset, **overrides)
    return float(config.past_window), float(config.current_window)


def chunk_decode_task(model: str = "neuroformer", window: float = 1.0, behavior_key: str = "hand_vel",
                      preset: str = "tiny", **overrides: Any) -> Task:
    """Decode R2 over whole ``window``-second trials, binned for the baselines at a fifth of the model's chunk."""
    past, chunk = _reads(model, preset, **overrides)
    bin_size = chunk / BINS_PER_CHUNK
    if abs(past / bin_size - round(past / bin_size)) > 1e-6:
        raise ValueError(f"{model}'s past window {past:g} s is not a whole number of {bin_size:g} s bins")
    return Task(DECODE_R2, window=window, bin_size=bin_size, behavior_key=behavior_key)


def chunk_decode_baselines(task: Task, model: str = "neuroformer", preset: str = "tiny",
                           **overrides: Any) -> list[BaselineCandidate]:
    """Causal and acausal Wiener filters reading at most the model's past + current span (and the acausal one at
    most one chunk ahead), at the task's bins."""
    past, chunk = _reads(model, preset, **overrides)
    span, ahead = round((past + chunk) / task.bin_size), round(chunk / task.bin_size)
    ms = round((past + chunk) * 1e3)
    causal = Wiener(causal=True, window_bins=span, lags=tuple(range(1, span + 1)))
    acausal = Wiener(causal=False, window_bins=span, lags=tuple(range(1, span + 1)), leads=tuple(range(1, ahead + 1)))
    causal.name, acausal.name = f"wiener causal {ms} ms", f"wiener acausal {ms} ms"
    return [BaselineCandidate(causal, task), BaselineCandidate(acausal, task)]


@dataclass
class ChunkDecodeCandidate(ModelCandidate):
    """A chunked generative model (Neuroformer), trained on its own windows, scored by decoding every chunk of
    the split's trials (row ``"<model> decode"``)."""

    def __post_init__(self) -> None:
        if self.task.metric not in DECODING_METRICS:
            raise ValueError(f"ChunkDecodeCandidate scores a decoding metric, got {self.task.metric!r}")
        past, chunk = _reads(self.model, self.preset, **self.overrides)
        if self.train_window is None:
            self.train_window = past + chunk
        super().__post_init__()
        self.causal = False  # a sample at a chunk's start reads the whole chunk after it
        self.name = f"{self.model} decode"
        self.info = (f"acausal: recorded spikes of the {past * 1e3:g} ms before each {chunk * 1e3:g} ms chunk and "
                     "of the chunk (up to one chunk after a decoded sample)")

    def key(self) -> dict:
        return {**super().key(), "scoring": "chunk_decode"}  # the same training as a plain model row, scored otherwise

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.generation import decode_behavior_by_trial, split_trials

        trials = split_trials(rec, split)
        decoded, true, trial = decode_behavior_by_trial(fitted["model"], fitted["tokenizer"], rec, trials,
                                                        duration=self.task.window)
        return TrialScores(self.metric, decoded, true, trial, len(trials))
