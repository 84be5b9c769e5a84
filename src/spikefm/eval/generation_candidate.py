"""Neuroformer's generation as a protocol candidate: bits per spike of its expected rates on whole trials.

The model trains on its own 100 ms (past + current chunk) windows. It is scored on the trials of a split, each
generated chunk by chunk as :func:`~spikefm.eval.generation.generate_spikes` does with ``true_past=True``: every
50 ms chunk conditions on the *recorded* spikes before it and on the trial's behaviour, and samples its own spikes
inside the chunk. The score is NLB's pooled bits per spike of the model's Rao-Blackwellised expected counts per
bin (averaged over :data:`N_SAMPLES` sampled trajectories, plus :data:`~spikefm.eval.generation.RATE_FLOOR`)
against the recorded counts of all units.

The baseline with the same conditioning is :class:`~spikefm.eval.baselines.HistoryGLM` at bins one chunk wide:
bin ``t``'s counts from the recorded counts of bins before ``t`` and the behaviour in bin ``t``. With the bin equal
to the chunk it reads exactly the recorded spikes Neuroformer's chunk conditions on (and up to 400 ms of them, where
Neuroformer's past holds 50 ms), and neither reads the chunk's own recorded spikes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from spikefm.data.recording import Recording
from spikefm.eval.candidates import Reporter, Task, TrialScores, task_arrays
from spikefm.eval.metrics import BITS_PER_SPIKE
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["N_SAMPLES", "GenerationCandidate", "generation_task"]

N_SAMPLES = 4  # sampled trajectories per trial whose expected counts are averaged


def generation_task(model: str, window: float, behavior_key: str, preset: str = "tiny", **overrides: Any) -> Task:
    """The bits-per-spike task of a generative model: ``window`` seconds per trial, bins one chunk wide."""
    from spikefm.models.registry import build_config

    chunk = build_config(model, preset, **overrides).current_window
    return Task(BITS_PER_SPIKE, window=window, bin_size=chunk, behavior_key=behavior_key)


@dataclass
class GenerationCandidate(ModelCandidate):
    """A generative model (Neuroformer) trained like any :class:`ModelCandidate`, scored by generating trials."""

    def __post_init__(self) -> None:
        if self.task.metric != BITS_PER_SPIKE:
            raise ValueError(f"GenerationCandidate scores {BITS_PER_SPIKE!r}, got task metric {self.task.metric!r}")
        if self.train_window is None:
            from spikefm.models.registry import build_config

            config = build_config(self.model, self.preset, **self.overrides)
            self.train_window = config.past_window + config.current_window
        super().__post_init__()
        ms = self.task.bin_size * 1e3
        self.info = (f"recorded spikes before each {ms:g} ms chunk + the chunk's behaviour, "
                     "its own samples inside the chunk")

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None) -> dict:
        fitted = super().fit(dev, params, seed, report)
        fitted["seed"] = seed  # sampling is seeded with the training seed, so a seed's score is reproducible
        return fitted

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.generation import RATE_FLOOR, generate_spikes, split_trials

        trials = split_trials(rec, split)
        generated = generate_spikes(fitted["model"], rec, trials, duration=self.task.window, n_samples=N_SAMPLES,
                                    true_past=True, seed=fitted["seed"])
        rates = generated.expected_rates(self.task.bin_size).mean(1) + RATE_FLOOR  # [K, T, N]
        counts = task_arrays(self.task, rec, split).counts
        if rates.shape != counts.shape:
            raise RuntimeError(f"{self.model}: generated rates {rates.shape} and recorded counts {counts.shape} "
                               f"of split {split!r} do not align")
        return TrialScores.binned(self.metric, rates, counts)
