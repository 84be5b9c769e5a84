"""Candidates: anything the protocol tunes on validation and scores once on test, a baseline or a model.

A candidate declares its metric, whether it is causal, a search space (an optuna ``suggest``
function) and four steps:

* ``default()``: the published / preset setting, always the search's first trial;
* ``fit(dev, params, seed, report)`` on the development recording (test data cut out), training on
  the ``train`` split; ``report(step, value)`` passes intermediate validation values to the pruner;
* ``validate(fitted, dev)``: the metric on the ``val`` split (what the search maximises);
* ``predict(fitted, rec)``: :class:`TrialScores` on the ``test`` split of the whole recording, which only
  the final scoring step holds.

:class:`BaselineCandidate` wraps any tunable baseline of :mod:`spikefm.eval.baselines` (smoothing, causal /
acausal Wiener, Kalman); models (trained with :func:`spikefm.train.fit.fit`) are
:class:`spikefm.eval.model_candidate.ModelCandidate`. Decoders are scored at the recorded behaviour samples
(:mod:`spikefm.eval.samples`).

Shape legend: ``K`` trials / blocks, ``T`` bins, ``N`` units, ``D`` behaviour dimensions, ``S`` scored samples.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Protocol

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.baselines import Baseline, Choice, suggest
from spikefm.eval.metrics import (BITS_PER_SPIKE, CO_BPS, DECODE_R2, ENC_BPS, POSITION_R2, bits_per_spike, co_bps,
                                  decoding_r2)
from spikefm.eval.samples import BehaviorSamples, at_samples, bin_centres
from spikefm.eval.trials import TrialArrays, trial_arrays

__all__ = ["METRICS", "masked_metric", "predicted_decoder_scores", "ScoredBySplit", "Task", "TrialScores", "Candidate", "Reporter", "BaselineCandidate", "task_arrays",
           "decoder_scores", "decoding_inputs", "inputs_key", "config_key"]

Reporter = Callable[[int, float], None]


def _decode_r2(pred: np.ndarray, truth: np.ndarray) -> float:
    valid = np.all(np.isfinite(truth), axis=-1)
    return decoding_r2(pred[valid], truth[valid])


# metric name -> f(pred [S, F], truth [S, F]) -> float. "decode R2" / "position R2": direct decoding R2 at the
# recorded behaviour samples, variance-weighted over behaviour dimensions (not NLB's ridge-from-rates "vel R2");
# "co-bps": NLB's co-smoothing bits per spike on held-out units, pooled over the scored bins; "bits/spike": the same
# pooled definition over all units (a generative model's expected counts given the recorded past).
# "<task> bps" (MtM's four tasks, :func:`masked_metric`): the pooled definition over the entries the task hides.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    CO_BPS: co_bps,
    BITS_PER_SPIKE: bits_per_spike,
    ENC_BPS: bits_per_spike,
    DECODE_R2: _decode_r2,
    POSITION_R2: _decode_r2,
    **{f"{task} bps": bits_per_spike for task in ("forward_pred", "neuron_pred", "intra_region", "inter_region")},
}
DECODING_METRICS = (DECODE_R2, POSITION_R2)


def inputs_key(metric: str) -> dict[str, str]:
    """What a row's cache key records about its inputs: a decoding row reads every unit since 2026-12-05
    (:func:`decoding_inputs`), so no row cached before that is reused; other rows' keys are unchanged."""
    return {"inputs": "every unit"} if metric in DECODING_METRICS else {}


def config_key(config: Any) -> dict[str, Any]:
    """A model row's resolved config (a dataclass) as a cache-key entry.

    Keys named only the preset and the overrides, so a changed default (``input_ridge`` became the unified
    model's on 2026-12-05) left a resumed run's key unchanged and its rows cached under the old default were
    reused. With every resolved field in the key, any change of what a model is makes a new key."""
    return {"config": asdict(config)}


def decoding_inputs(rec: Recording, metric: str) -> Recording:
    """``rec`` as a row of ``metric`` reads it: for a decoding metric no unit is flagged held-out.

    Held-out flags say which units co-smoothing predicts; a decoding task reads every recorded unit. The Wiener
    and Kalman filters, POYO, POSSM and SPINT read every unit whatever the flags say, but the unified model, NDT3
    and NEDS keep flagged units out of their input, so on a recording with flags they decoded from fewer units
    than the rows they were compared with (until 2026-12-05: a quarter fewer on the synthetic draws). Other
    metrics get ``rec`` unchanged.
    """
    heldout = rec.units.heldout
    if metric not in DECODING_METRICS or heldout is None or not np.asarray(heldout).any():
        return rec
    return replace(rec, units=replace(rec.units, heldout=np.zeros(rec.n_units, bool)))


def _bps_resample(pred: np.ndarray, truth: np.ndarray, null: np.ndarray) -> float:
    return bits_per_spike(pred, truth, null_rates=null)


def _r2_resample(pred: np.ndarray, truth: np.ndarray, mean: np.ndarray) -> float:
    """Variance-weighted R2 with the sum of squares taken about ``mean`` (the whole evaluation set's)."""
    valid = np.all(np.isfinite(truth), axis=-1)
    pred, truth = pred[valid], truth[valid]
    total = float(np.sum((truth - mean) ** 2))
    return 1.0 - float(np.sum((truth - pred) ** 2)) / total if total > 0 else float("nan")


def _reference(metric: str, truth: np.ndarray) -> np.ndarray:
    """What a resample keeps from the whole evaluation set: the null's mean counts (bits per spike) or the
    behaviour's mean (R2). Refitting it to each resample of few trials biases the replicates low."""
    if metric in DECODING_METRICS:
        valid = np.all(np.isfinite(truth), axis=-1)
        return truth[valid].mean(axis=0)
    return np.nanmean(truth, axis=0)


#: metric -> f(pred, truth, reference) scoring a bootstrap resample against the whole set's reference.
RESAMPLED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    **{m: _r2_resample for m in DECODING_METRICS},
    **{m: _bps_resample for m in METRICS if m not in DECODING_METRICS},
}


def masked_metric(task: str) -> str:
    """The metric name of MtM task ``task`` (e.g. ``"forward_pred bps"``)."""
    metric = f"{task} bps"
    if metric not in METRICS:
        raise ValueError(f"unknown MtM task {task!r}")
    return metric


@dataclass(frozen=True)
class Task:
    """What is scored and how a recording becomes arrays.

    Attributes:
        metric: a key of :data:`METRICS`.
        window: seconds per trial window (trial data) or per block (block data).
        bin_size: seconds per bin for the binned baselines.
        behavior_key: behaviour to decode (decoding metrics) or to condition on (bits/spike), else None.
        continuous: blocks are back-to-back pieces of one stretch (history crosses block edges).
    """

    metric: str
    window: float
    bin_size: float
    behavior_key: str | None = None
    continuous: bool = False

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose one of {sorted(METRICS)}")
        if self.metric in DECODING_METRICS and self.behavior_key is None:
            raise ValueError(f"metric {self.metric!r} needs a behavior_key")

    @property
    def window_bins(self) -> int:
        return max(int(round(self.window / self.bin_size)), 1)


@dataclass
class TrialScores:
    """One fitted candidate's test output, kept per scored sample with its trial, so the protocol can bootstrap
    over trials (or blocks).

    Attributes:
        metric: a key of :data:`METRICS`.
        pred: [S, F] predictions (held-out rates per bin, or decoded behaviour at the recorded samples).
        truth: [S, F] observed held-out counts or recorded behaviour.
        trial: int [S] the trial / block of each sample.
        n: number of trials / blocks.
    """

    metric: str
    pred: np.ndarray
    truth: np.ndarray
    trial: np.ndarray
    n: int
    _rows: list[np.ndarray] | None = field(default=None, repr=False)
    _reference: np.ndarray | None = field(default=None, repr=False)

    def score(self, index: np.ndarray | None = None) -> float:
        """The metric over all trials, or over the trials ``index`` (with repeats, for the bootstrap).

        A resample is scored against the whole set's reference (:data:`RESAMPLED`: the null's mean counts, or
        the behaviour's mean for R2), so replicates centre on the point estimate.
        """
        if index is None:
            return METRICS[self.metric](self.pred, self.truth)
        if self._rows is None:
            order = np.argsort(self.trial, kind="stable")
            self._rows = np.split(order, np.searchsorted(self.trial[order], np.arange(1, self.n)))
            self._reference = _reference(self.metric, self.truth)
        rows = np.concatenate([self._rows[k] for k in index])
        return RESAMPLED[self.metric](self.pred[rows], self.truth[rows], self._reference)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pred": self.pred, "truth": self.truth, "trial": self.trial, "n": np.array(self.n)}

    @classmethod
    def binned(cls, metric: str, pred: np.ndarray, truth: np.ndarray) -> "TrialScores":
        """From per-bin arrays ``[K, T, F]`` (co-bps: held-out rates and counts)."""
        k, t = pred.shape[:2]
        return cls(metric, pred.reshape(k * t, -1), truth.reshape(k * t, -1), np.repeat(np.arange(k), t), k)


def decoder_scores(metric: str, pred: np.ndarray, query_times: np.ndarray, samples: BehaviorSamples | None,
                   n: int, query_mask: np.ndarray | None = None, truth_at_queries: np.ndarray | None = None
                   ) -> TrialScores:
    """Decoded behaviour ``[K, Q, D]`` at ``query_times`` scored at the recorded ``samples`` (interpolated per
    window); without recorded samples (a derived target), at the valid queries against ``truth_at_queries``."""
    if samples is not None and samples.trial.size > 1:
        return TrialScores(metric, at_samples(pred, query_times, samples, query_mask), samples.values,
                           samples.trial, n)
    mask = np.ones(pred.shape[:2], bool) if query_mask is None else query_mask
    trial = np.broadcast_to(np.arange(pred.shape[0])[:, None], mask.shape)[mask]
    return TrialScores(metric, pred[mask], truth_at_queries[mask], trial, n)


def predicted_decoder_scores(metric: str, out: Any) -> TrialScores:
    """:func:`decoder_scores` of a decoder's :class:`~spikefm.eval.evaluate.Predictions`."""
    return decoder_scores(metric, out.behavior, out.query_times, out.samples, out.behavior.shape[0], out.query_mask,
                          out.behavior_true)


def predicted_heldout_scores(metric: str, out: Any, session: str = "") -> TrialScores:
    """Held-out units' rates and counts of a :class:`~spikefm.eval.evaluate.Predictions` (co-smoothing).

    Raises:
        ValueError: the predictions carry no rates or no held-out unit.
    """
    if out.rates is None or out.heldout is None or not out.heldout.any():
        raise ValueError(f"{session or 'the recording'}: no held-out units to score (co-smoothing needs units "
                         "flagged heldout)")
    return TrialScores.binned(metric, out.rates[..., out.heldout], out.counts[..., out.heldout])


@dataclass
class ScoredBySplit:
    """What every candidate class shares: the row's ``name``, ``metric``, ``causal`` flag and ``info`` (set in
    ``__post_init__``), and ``validate`` / ``predict`` as its ``_scores(fitted, recording, split) -> TrialScores``
    (which every subclass defines) on the val / test split."""

    name: str = field(init=False)
    metric: str = field(init=False)
    causal: bool = field(init=False)
    info: str = field(init=False)

    def validate(self, fitted: Any, dev: Recording) -> float:
        return self._scores(fitted, decoding_inputs(dev, self.metric), "val").score()

    def predict(self, fitted: Any, rec: Recording) -> TrialScores:
        return self._scores(fitted, decoding_inputs(rec, self.metric), "test")


class Candidate(Protocol):
    """What the protocol needs from a baseline or a model (see the module docstring)."""

    name: str
    metric: str
    causal: bool
    deterministic: bool  # True: the score does not depend on the seed (one seed is run)
    info: str  # the information it reads, e.g. "causal, 200 ms history" (shown beside its row)

    def suggest(self, trial: Any) -> dict[str, Any]: ...
    def default(self) -> dict[str, Any]: ...
    def key(self) -> dict[str, Any]: ...
    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None) -> Any: ...
    def validate(self, fitted: Any, dev: Recording) -> float: ...
    def predict(self, fitted: Any, rec: Recording) -> TrialScores: ...


def task_arrays(task: Task, rec: Recording, split: str) -> TrialArrays:
    """:class:`~spikefm.eval.trials.TrialArrays` of ``split`` binned for ``task``."""
    return trial_arrays(rec, split=split, bin_size=task.bin_size, window=task.window, behavior_key=task.behavior_key)


def _as_stretch(arrays: TrialArrays) -> TrialArrays:
    """Back-to-back blocks as one stretch ``[1, K*T, ...]``, so a filter's history crosses block edges."""
    k, t, n = arrays.counts.shape
    behavior = None if arrays.behavior is None else arrays.behavior.reshape(1, k * t, -1)
    return replace(arrays, counts=arrays.counts.reshape(1, k * t, n), behavior=behavior, samples=None,
                   starts=arrays.starts[:1])


# Defaults (first search trial) by baseline name: NLB's MC_Maze smoothing; a 100 ms causal Wiener history
# (5 bins of 20 ms, the earlier tables' filter) and, acausal, 200 ms ahead; the Kalman filter without lag.
DEFAULTS: dict[str, dict[str, Any]] = {
    "smoothing": {"kernel_sd": 0.05, "alpha": 0.01},
    "smoothing causal": {"kernel_sd": 0.05, "alpha": 0.01},
    "wiener causal": {"lags": 5, "alpha": 100.0},
    "wiener acausal": {"lags": 5, "alpha": 100.0, "leads": 10},
    "kalman": {"lag": 0, "alpha": 1.0},
    "history GLM": {"history": 3, "alpha": 1e-2},
    "forward GLM": {"kernel_sd": 0.05, "alpha": 0.1},
    **{f"smoothing {task}": {"kernel_sd": 0.05, "alpha": 0.01} for task in ("neuron_pred", "intra_region",
                                                                            "inter_region")},
}


@dataclass
class BaselineCandidate(ScoredBySplit):
    """A tunable baseline of :mod:`spikefm.eval.baselines` as a protocol candidate.

    ``train_trials`` (k) fits it on the first k trials of the train split only (the labelled trials a transfer
    method may use on a new session); its row is then named ``"<baseline> k=<k>"``.
    """

    baseline: Baseline
    task: Task
    deterministic: bool = True
    train_trials: int | None = None

    def __post_init__(self) -> None:
        self.name, self.metric, self.causal = self.baseline.name, self.task.metric, self.baseline.causal
        ms = self.task.bin_size * 1e3
        space = self.baseline.search_space()
        reads = {k: max(v.values) if isinstance(v, Choice) else v.high for k, v in space.items()}
        if self.name.startswith("wiener"):
            ahead = reads.get("leads", 0) * ms
            self.info = (f"{'causal' if self.causal else 'acausal'}, {ms:g} ms bins, up to "
                         f"{reads['lags'] * ms:.0f} ms history" + (f" + {ahead:.0f} ms ahead" if ahead else "")
                         + (f" ({self._within()})" if not self.causal else ""))
        elif self.name.startswith("kalman"):
            self.info = f"causal, {ms:g} ms bins, state = behaviour"
        elif self.name == "forward GLM":
            self.info = f"causal: held-in units' smoothed counts up to the last visible {ms:g} ms bin"
        elif self.name.startswith("smoothing ") and self.name != "smoothing causal":
            self.info = f"acausal: Gaussian kernel, {ms:g} ms bins, the held-in units its task shows"
        elif self.name == "behaviour GLM":
            self.info = (f"acausal: the behaviour within {reads['half_width'] * ms:.0f} ms either side of each "
                         f"{ms:g} ms bin, no spikes")
        elif self.name.startswith("history"):
            self.info = (f"causal: recorded spikes of up to {reads['history'] * ms:.0f} ms before each {ms:g} ms bin"
                         " + the bin's behaviour")
        else:
            self.info = f"{'causal' if self.causal else 'acausal'}: Gaussian kernel, {ms:g} ms bins"
        if self.train_trials is not None:
            if self.train_trials < 1:
                raise ValueError(f"train_trials must be >= 1, got {self.train_trials}")
            self.name = f"{self.name} k={self.train_trials}"
            self.info = f"{self.info}; fitted on {self.train_trials} labelled trials of the session"

    def _within(self) -> str:
        """What bounds an acausal filter's reads: the model's window, or a narrower span it was capped at."""
        cap = getattr(self.baseline, "window_bins", None)
        if cap is None or cap >= self.task.window_bins:
            return f"within the model's {self.task.window:g} s window"
        return f"at most {cap * self.task.bin_size * 1e3:.0f} ms in all, what the model reads"

    def key(self) -> dict[str, Any]:
        space = {k: repr(v) for k, v in self.baseline.search_space().items()}
        return {"kind": "baseline", "name": self.name, "task": self.task.__dict__, "space": space,
                **({"train_trials": self.train_trials} if self.train_trials is not None else {})}

    def default(self) -> dict[str, Any]:
        space = self.baseline.search_space()
        chosen = DEFAULTS.get(self.baseline.name, {})
        return {k: chosen[k] if k in chosen and (not isinstance(v, Choice) or chosen[k] in v.values)
                else (v.values[len(v.values) // 2] if isinstance(v, Choice) else v.low)
                for k, v in space.items()}

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {name: suggest(trial, name, knob) for name, knob in self.baseline.search_space().items()}

    def _arrays(self, rec: Recording, split: str) -> TrialArrays:
        arrays = task_arrays(self.task, rec, split)
        return _as_stretch(arrays) if self.task.continuous else arrays

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None) -> Baseline:
        if self.train_trials is None:
            return copy.deepcopy(self.baseline).fit(self._arrays(dev, "train"), params)
        train = task_arrays(self.task, dev, "train")
        if train.counts.shape[0] < self.train_trials:
            raise ValueError(f"{self.name}: the session has {train.counts.shape[0]} train trials")
        return copy.deepcopy(self.baseline).fit(train.take(np.arange(self.train_trials)), params)

    def _scores(self, fitted: Baseline, rec: Recording, split: str) -> TrialScores:
        arrays = task_arrays(self.task, rec, split)
        if self.metric == CO_BPS:
            return TrialScores.binned(self.metric, fitted.predict(arrays)[1], arrays.heldout_counts)
        if hasattr(fitted, "predict_entries"):  # MtM's masked tasks: the entries the task hides
            return TrialScores.binned(self.metric, *fitted.predict_entries(arrays))
        if self.metric in (BITS_PER_SPIKE, ENC_BPS):  # every unit's counts (generation, encoding)
            return TrialScores.binned(self.metric, fitted.predict(arrays), arrays.counts)
        k, t = arrays.counts.shape[:2]
        pred = fitted.predict(_as_stretch(arrays) if self.task.continuous else arrays).reshape(k, t, -1)
        return decoder_scores(self.metric, pred, bin_centres(k, t, self.task.bin_size), arrays.samples, k,
                              truth_at_queries=arrays.behavior)
