"""Candidates: anything the protocol tunes on validation and scores once on test, a baseline or a model.

A candidate declares its metric, whether it is causal, a search space (an optuna ``suggest``
function) and three steps:

* ``default()``: the published / preset setting, always the search's first trial;
* ``fit(dev, params, seed, report)`` on the development recording (test data cut out), training on
  the ``train`` split; ``report(step, value)`` passes intermediate validation values to the pruner;
* ``validate(fitted, dev)``: the metric on the ``val`` split (what the search maximises);
* ``predict(fitted, rec)``: per-trial (or per-block) :class:`TrialScores` on the ``test`` split of
  the whole recording, which only the final scoring step holds.

Baselines here: NLB smoothing (kernel width and GLM alpha on val) for co-bps; the Wiener filter
(ridge on binned counts, lags and alpha on val), causal or reading ``lead`` bins ahead too, for decoding.
Models (trained with :func:`spikefm.train.fit.fit`) are in :mod:`spikefm.eval.model_candidate`.

Shape legend: ``K`` trials / blocks, ``T`` bins, ``N`` units, ``D`` behaviour dimensions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.baselines import SmoothingBaseline, lagged_features
from spikefm.eval.metrics import co_bps, decoding_r2
from spikefm.eval.trials import trial_arrays

__all__ = [
    "METRICS", "Task", "TrialScores", "Candidate", "Reporter",
    "SmoothingCandidate", "WienerCandidate", "window_features", "task_arrays",
]

Reporter = Callable[[int, float], None]


def _co_bps(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    return co_bps(pred, truth)


def _decode_r2(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    valid = mask & np.all(np.isfinite(truth), axis=-1)
    return decoding_r2(pred[valid], truth[valid])


# metric name -> f(pred [K, ...], truth [K, ...], mask [K, T]) -> float. "decode R2" / "position R2" are direct
# decoding R2 over all scored samples, variance-weighted over behaviour dimensions (not NLB's ridge-from-rates
# "vel R2"); "co-bps" is NLB's co-smoothing bits per spike on held-out units.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "co-bps": _co_bps,
    "decode R2": _decode_r2,
    "position R2": _decode_r2,
}


@dataclass(frozen=True)
class Task:
    """What is scored and how a recording becomes arrays.

    Attributes:
        metric: a key of :data:`METRICS`.
        window: seconds per trial window (trial data) or per block (block data).
        bin_size: seconds per bin for the binned baselines.
        behavior_key: behaviour to decode (decoding metrics), else None.
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
        if self.metric != "co-bps" and self.behavior_key is None:
            raise ValueError(f"metric {self.metric!r} needs a behavior_key")


@dataclass
class TrialScores:
    """One fitted candidate's test output, kept per trial so the protocol can bootstrap over trials.

    Attributes:
        metric: a key of :data:`METRICS`.
        pred: [K, T, ...] predictions (held-out rates or decoded behaviour).
        truth: [K, T, ...] observed held-out counts or behaviour.
        mask: bool [K, T] scored samples.
    """

    metric: str
    pred: np.ndarray
    truth: np.ndarray
    mask: np.ndarray

    @property
    def n(self) -> int:
        return int(self.pred.shape[0])

    def score(self, index: np.ndarray | None = None) -> float:
        """The metric over all trials, or over the trials ``index`` (with repeats, for the bootstrap)."""
        if index is None:
            return METRICS[self.metric](self.pred, self.truth, self.mask)
        return METRICS[self.metric](self.pred[index], self.truth[index], self.mask[index])

    def arrays(self) -> dict[str, np.ndarray]:
        return {"pred": self.pred, "truth": self.truth, "mask": self.mask}


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


def task_arrays(task: Task, rec: Recording, split: str):
    """:class:`~spikefm.eval.trials.TrialArrays` of ``split`` binned for ``task``."""
    return trial_arrays(rec, split=split, bin_size=task.bin_size, window=task.window, behavior_key=task.behavior_key)


# --------------------------------------------------------------------------- smoothing (co-bps)
@dataclass
class SmoothingCandidate:
    """NLB's smoothing baseline; kernel sd (s) and GLM alpha searched on val."""

    task: Task
    kernel_sd: tuple[float, float] = (0.01, 0.15)
    alpha: tuple[float, float] = (1e-4, 10.0)
    name: str = "smoothing"
    causal: bool = False
    deterministic: bool = True
    metric: str = field(init=False)

    def __post_init__(self) -> None:
        self.metric = self.task.metric
        self.info = "acausal: Gaussian kernel over the whole trial"

    def key(self) -> dict[str, Any]:
        return {"kind": "smoothing", "task": self.task.__dict__, "space": [self.kernel_sd, self.alpha]}

    def default(self) -> dict[str, Any]:
        return {"kernel_sd": 0.05, "alpha": 0.01}  # NLB's MC_Maze setting

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {"kernel_sd": trial.suggest_float("kernel_sd", *self.kernel_sd, log=True),
                "alpha": trial.suggest_float("alpha", *self.alpha, log=True)}

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None):
        train = task_arrays(self.task, dev, "train")
        sd = max(params["kernel_sd"], self.task.bin_size / 5)  # narrower than a bin is no smoothing at all
        return SmoothingBaseline(bin_size=self.task.bin_size, kernel_sd=sd, alpha=params["alpha"]).fit(
            train.heldin_counts, train.heldout_counts)

    def _scores(self, fitted: SmoothingBaseline, rec: Recording, split: str) -> TrialScores:
        arrays = task_arrays(self.task, rec, split)
        rates = fitted.predict(arrays.heldin_counts)[1]
        return TrialScores(self.metric, rates, arrays.heldout_counts, np.ones(rates.shape[:2], bool))

    def validate(self, fitted: SmoothingBaseline, dev: Recording) -> float:
        return self._scores(fitted, dev, "val").score()

    def predict(self, fitted: SmoothingBaseline, rec: Recording) -> TrialScores:
        return self._scores(fitted, rec, "test")


# --------------------------------------------------------------------------- Wiener filter (decoding)
def window_features(counts: np.ndarray, lags: int, lead: int = 0) -> np.ndarray:
    """Lagged counts ``[x_t .. x_{t-lags+1}]`` plus, when ``lead > 0``, ``[x_{t+1} .. x_{t+lead}]``.

    Zeros outside each trial (or stretch). Returns ``[K * T, N * (lags + lead)]``.
    """
    x = np.asarray(counts, np.float64)
    x = x[None] if x.ndim == 2 else x
    past = lagged_features(x, lags)
    if lead <= 0:
        return past
    k, t, n = x.shape
    future = lagged_features(x[:, ::-1], lead + 1).reshape(k, t, -1)[:, ::-1, n:]  # reversed lags 1..lead
    return np.concatenate([past, future.reshape(k * t, -1)], axis=1)


def _ridge(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(weights, x mean, y mean) of ridge regression with an unpenalised intercept."""
    mean_x, mean_y = x.mean(0), y.mean(0)
    centred = x - mean_x
    gram = centred.T @ centred + alpha * np.eye(x.shape[1])
    return np.linalg.solve(gram, centred.T @ (y - mean_y)), mean_x, mean_y


@dataclass
class WienerCandidate:
    """Wiener filter: ridge from ``lags`` bins of history (and ``lead`` bins ahead if acausal) to behaviour.

    Lags, lead and alpha are searched on val. With ``max_lead = 0`` it is causal; give the acausal form a
    ``max_lead`` that covers the window the compared model reads.
    """

    task: Task
    max_lags: int = 20
    max_lead: int = 0
    alpha: tuple[float, float] = (1e-2, 1e6)
    name: str = ""
    deterministic: bool = True
    metric: str = field(init=False)
    causal: bool = field(init=False)

    def __post_init__(self) -> None:
        self.metric = self.task.metric
        self.causal = self.max_lead == 0
        self.name = self.name or ("wiener causal" if self.causal else "wiener acausal")
        ms = self.task.bin_size * 1e3
        self.info = (f"causal, up to {self.max_lags * ms:.0f} ms history" if self.causal
                     else f"acausal, up to {self.max_lags * ms:.0f} ms history + {self.max_lead * ms:.0f} ms ahead")

    def key(self) -> dict[str, Any]:
        return {"kind": "wiener", "task": self.task.__dict__, "space": [self.max_lags, self.max_lead, self.alpha]}

    def default(self) -> dict[str, Any]:
        # a 100 ms history (5 bins of 20 ms, the earlier tables' Wiener filter); the acausal form reads 200 ms ahead
        lags = max(1, min(self.max_lags, int(round(0.1 / self.task.bin_size))))
        lead = {"lead": max(1, min(self.max_lead, int(round(0.2 / self.task.bin_size))))} if self.max_lead else {}
        return {"lags": lags, "alpha": 100.0, **lead}

    def suggest(self, trial: Any) -> dict[str, Any]:
        params = {"lags": trial.suggest_int("lags", 1, self.max_lags),
                  "alpha": trial.suggest_float("alpha", *self.alpha, log=True)}
        if self.max_lead:
            params["lead"] = trial.suggest_int("lead", 0, self.max_lead)
        return params

    def _xy(self, rec: Recording, split: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        arrays = task_arrays(self.task, rec, split)
        counts, y = arrays.counts, arrays.behavior.astype(np.float64)
        if self.task.continuous:  # back-to-back blocks: one stretch, history crosses block edges
            counts, y = counts.reshape(1, -1, counts.shape[-1]), y.reshape(1, -1, y.shape[-1])
        return counts, y, arrays.behavior.shape

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None):
        counts, y, _ = self._xy(dev, "train")
        x = window_features(counts, params["lags"], params.get("lead", 0))
        y = y.reshape(x.shape[0], -1)
        keep = np.all(np.isfinite(y), axis=1)
        return {"params": params, "ridge": _ridge(x[keep], y[keep], params["alpha"])}

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        counts, y, shape = self._xy(rec, split)
        weights, mean_x, mean_y = fitted["ridge"]
        x = window_features(counts, fitted["params"]["lags"], fitted["params"].get("lead", 0))
        pred = ((x - mean_x) @ weights + mean_y).reshape(shape)
        truth = y.reshape(shape)
        return TrialScores(self.metric, pred, truth, np.ones(shape[:2], bool))

    def validate(self, fitted: dict, dev: Recording) -> float:
        return self._scores(fitted, dev, "val").score()

    def predict(self, fitted: dict, rec: Recording) -> TrialScores:
        return self._scores(fitted, rec, "test")
