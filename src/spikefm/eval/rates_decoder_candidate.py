"""A self-supervised model's inferred rates, decoded by a Wiener filter: a decoding row for NDT1-style models.

NLB scores a latent model's behaviour by a ridge regression from its predicted rates (``vel R2``). Under the
protocol the same idea is a decoding row (``decode R2`` / ``position R2`` at the recorded samples, like every
other decoder): the model trains on the train split's spikes alone (no behaviour), its rates on the train
windows fit a Wiener filter to the behaviour, and the filter decodes the rates of the scored windows. The model's
knobs (learning rate, weight decay, steps, EMA, kept checkpoint) and the filter's (lags, leads, ridge alpha) are
searched together on validation, with the same budget as any candidate.

The filter reads what the model reads: an acausal model (NDT1 reads its whole window) gets the acausal filter,
its lags and leads capped at the window; a causal model gets the causal filter.

>>> from spikefm.eval.rates_decoder_candidate import RatesDecoderCandidate  # doctest: +SKIP
>>> RatesDecoderCandidate("ndt1", decode_task)  # row "ndt1 rates -> wiener"  # doctest: +SKIP
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.baselines.wiener import Wiener
from spikefm.eval.candidates import (DEFAULTS, Reporter, ScoredBySplit, Task, TrialScores, _as_stretch,
                                     bin_centres, decoder_scores, decoding_inputs, inputs_key, suggest, task_arrays)
from spikefm.eval.metrics import CO_BPS
from spikefm.eval.model_candidate import ModelCandidate

__all__ = ["RatesDecoderCandidate"]


@dataclass
class RatesDecoderCandidate(ScoredBySplit):
    """Registered self-supervised ``model`` trained on the spikes of the dev train split; its rates decoded by a
    Wiener filter fitted on the same train windows.

    Args:
        model: registry name of a model that predicts rates (``spikefm.models.list_models()``; e.g. ``ndt1``).
        task: a decoding task (its bins are the model's bins: binned models are set to them).
        max_steps, batch_size, preset, overrides, out_dir: as :class:`~spikefm.eval.model_candidate.ModelCandidate`.
    """

    model: str
    task: Task
    max_steps: int = 600
    batch_size: int = 32
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    out_dir: Path | None = None
    deterministic: bool = False

    def __post_init__(self) -> None:
        from spikefm.models.registry import get_spec

        if get_spec(self.model).task != "self_supervised":
            raise ValueError(f"{self.model} decodes behaviour itself; a rates row needs a model that predicts rates")
        if self.task.behavior_key is None:
            raise ValueError("a rates -> Wiener row needs a decoding task with a behaviour key")
        # The model trains on spikes only (a rates task: no behaviour to read), at the decoding task's windows.
        self.rates_model = ModelCandidate(self.model, replace(self.task, metric=CO_BPS, behavior_key=None), max_steps=self.max_steps,
                                          batch_size=self.batch_size, preset=self.preset,
                                          overrides=self.overrides, out_dir=self.out_dir)
        self.causal = self.rates_model.causal
        self.decoder = Wiener(causal=self.causal, window_bins=None if self.causal else self.task.window_bins)
        self.name, self.metric = f"{self.model} rates -> {self.decoder.name}", self.task.metric
        ms = self.task.bin_size * 1e3
        self.info = (f"{self.rates_model.info}; its rates in {ms:g} ms bins decoded by "
                     f"{'a causal' if self.causal else 'an acausal'} Wiener filter fitted on the train windows")

    def key(self) -> dict[str, Any]:
        space = {k: repr(v) for k, v in self.decoder.search_space().items()}
        return {"kind": "model", "readout": "rates_decoder", "rates_model": self.rates_model.key(),
                "decoder": self.decoder.name,
                "decoder_space": space, "task": self.task.__dict__,
                **inputs_key(self.metric)}

    def default(self) -> dict[str, Any]:
        chosen = DEFAULTS[self.decoder.name]
        return {**self.rates_model.default(), **{k: chosen[k] for k in self.decoder.search_space()}}

    def suggest(self, trial: Any) -> dict[str, Any]:
        knobs = {name: suggest(trial, name, knob) for name, knob in self.decoder.search_space().items()}
        return {**self.rates_model.suggest(trial), **knobs}

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None) -> dict:
        knobs = set(self.decoder.search_space())
        model_params = {k: v for k, v in params.items() if k not in knobs}
        dev = decoding_inputs(dev, self.metric)  # the rates model reads every unit, as the decoders it faces
        fitted = self.rates_model.fit(dev, model_params, seed, report)
        train = self._rate_arrays(fitted, dev, "train")
        decoder = copy.deepcopy(self.decoder).fit(_as_stretch(train) if self.task.continuous else train,
                                                  {k: params[k] for k in knobs})
        return {**fitted, "decoder": decoder}

    def _rate_arrays(self, fitted: dict, rec: Recording, split: str):
        """The split's task arrays with the model's predicted rates in place of the counts (same windows, bins)."""
        from spikefm.eval.evaluate import predict

        arrays = task_arrays(self.task, rec, split)
        out = predict(fitted["model"], fitted["tokenizer"], rec, split=split, window=self.task.window,
                      pack=fitted["pack"])
        if out.rates is None:
            raise ValueError(f"{self.model} returned no rates")
        if out.rates.shape[:2] != arrays.counts.shape[:2] or not np.allclose(out.starts, arrays.starts):
            raise ValueError(f"{self.model}'s rates {out.rates.shape[:2]} (windows, bins) do not line up with the "
                             f"task's bins {arrays.counts.shape[:2]} on {rec.session}'s {split} split; set the "
                             f"model's bin_size to the task's {self.task.bin_size:g} s")
        return replace(arrays, counts=out.rates.astype(np.float64))

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        arrays = self._rate_arrays(fitted, rec, split)
        k, t = arrays.counts.shape[:2]
        pred = fitted["decoder"].predict(_as_stretch(arrays) if self.task.continuous else arrays).reshape(k, t, -1)
        return decoder_scores(self.metric, pred, bin_centres(k, t, self.task.bin_size), arrays.samples, k,
                              truth_at_queries=arrays.behavior)
