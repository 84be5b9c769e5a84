"""The uniform interface every tunable baseline follows, and its validation-only search.

A tunable baseline is a small object with:

- ``name`` (str), ``causal`` (bool: reads no future bin), ``metric`` (the label :meth:`score` returns, from
  :mod:`spikefm.eval.metrics`; higher is better);
- ``search_space() -> {knob: Choice | Range}``, the knobs a search may turn;
- ``fit(train, params) -> self``, on a :class:`~spikefm.eval.trials.TrialArrays` (trials or contiguous blocks);
- ``predict(data)`` and ``score(data) -> float``.

:func:`tune_on_val` drives one with optuna (TPE, seeded; exhaustive grid when the grid fits the budget): every
candidate is fitted on ``train`` and scored on ``val``; the best is returned fitted on ``train``. The test split
is not an argument, so selection cannot read it; the protocol (:mod:`spikefm.eval.protocol`) scores the returned
baseline on test once.

>>> from spikefm.eval.baselines import Wiener, tune_on_val  # doctest: +SKIP
>>> tuned = tune_on_val(Wiener(causal=True), train, val, budget=8)  # doctest: +SKIP
>>> tuned.params, tuned.val_score, tuned.baseline.score(test)  # doctest: +SKIP
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Union

import numpy as np

from spikefm.eval.metrics import decoding_r2

if TYPE_CHECKING:
    from spikefm.eval.trials import TrialArrays

__all__ = ["Choice", "Range", "Knob", "Baseline", "Tuned", "tune_on_val", "grid", "suggest", "decoder_score"]


@dataclass(frozen=True)
class Choice:
    """A categorical knob: one of ``values`` (numbers, strings or bools)."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "values", tuple(self.values))
        if not self.values:
            raise ValueError("Choice needs at least one value")


@dataclass(frozen=True)
class Range:
    """A numeric knob in ``[low, high]``; ``log`` samples on a log scale, ``integer`` rounds to ints."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high or (self.log and self.low <= 0):
            raise ValueError(f"Range needs low <= high (and low > 0 when log), got {self.low}, {self.high}")


Knob = Union[Choice, Range]


class Baseline(ABC):
    """A baseline a validation search can tune (see the module docstring for the contract)."""

    name: str = "baseline"
    causal: bool = True
    metric: str = ""

    @abstractmethod
    def search_space(self) -> dict[str, Knob]:
        """Knob name -> :class:`Choice` or :class:`Range`."""

    @abstractmethod
    def fit(self, train: TrialArrays, params: Mapping[str, Any]) -> "Baseline":
        """Fits on ``train`` with one value per knob of :meth:`search_space`; returns self."""

    @abstractmethod
    def predict(self, data: TrialArrays) -> Any:
        """Predictions on ``data`` (rates or behaviour, per baseline)."""

    @abstractmethod
    def score(self, data: TrialArrays) -> float:
        """:attr:`metric` of :meth:`predict` on ``data``; higher is better."""

    def _check_params(self, params: Mapping[str, Any]) -> dict[str, Any]:
        space = self.search_space()
        missing, unknown = sorted(set(space) - set(params)), sorted(set(params) - set(space))
        if missing or unknown:
            raise KeyError(f"{self.name}: params need exactly the knobs {sorted(space)}; "
                           f"missing {missing}, unknown {unknown}")
        return dict(params)


@dataclass
class Tuned:
    """The result of :func:`tune_on_val`.

    Attributes:
        baseline: fitted on ``train`` with ``params``.
        params: the chosen knob values.
        val_score: its score on ``val``.
        trials: every candidate tried, ``(params, val score)`` in order.
        budget: candidates allowed.
    """

    baseline: Baseline
    params: dict[str, Any]
    val_score: float
    trials: list[tuple[dict[str, Any], float]] = field(default_factory=list)
    budget: int = 0


def grid(space: Mapping[str, Knob]) -> list[dict[str, Any]] | None:
    """Every combination when all knobs are :class:`Choice` (None when a knob is a :class:`Range`)."""
    if any(not isinstance(k, Choice) for k in space.values()):
        return None
    names = list(space)
    return [dict(zip(names, combo)) for combo in itertools.product(*(space[n].values for n in names))]


def suggest(trial: Any, name: str, knob: Knob) -> Any:
    """The value of ``knob`` an optuna ``trial`` proposes (for a protocol that runs its own study)."""
    if isinstance(knob, Choice):
        return trial.suggest_categorical(name, list(knob.values))
    if knob.integer:
        return trial.suggest_int(name, int(knob.low), int(knob.high), log=knob.log)
    return trial.suggest_float(name, knob.low, knob.high, log=knob.log)


def tune_on_val(baseline: Baseline, train: TrialArrays, val: TrialArrays, *, budget: int = 8, seed: int = 0) -> Tuned:
    """Chooses ``baseline``'s knobs on ``val`` with at most ``budget`` fits; never sees test data.

    When every knob is a :class:`Choice` and the grid has at most ``budget`` points, the whole grid is tried;
    otherwise optuna's TPE sampler (seeded) proposes ``budget`` candidates. A candidate whose fit or score is not
    finite scores ``-inf``. The winner is refitted on ``train`` (fits are deterministic, so it equals the scored one).

    Args:
        baseline: a :class:`Baseline`.
        train: what candidates are fitted on.
        val: what candidates are scored on.
        budget: the number of candidates (the protocol gives models the same budget).
        seed: the sampler's seed.

    Returns:
        :class:`Tuned`.
    """
    import optuna

    if budget < 1:
        raise ValueError(f"budget must be >= 1 candidate, got {budget}")
    space = baseline.search_space()
    points = grid(space)
    if points is not None and len(points) <= budget:
        sampler: Any = optuna.samplers.GridSampler({n: list(k.values) for n, k in space.items()}, seed=seed)
        n_trials = len(points)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
        n_trials = budget
    history: list[tuple[dict[str, Any], float]] = []
    seen: dict[tuple, float] = {}  # a repeated proposal (TPE over categories) costs no second fit

    def objective(trial: Any) -> float:
        params = {name: suggest(trial, name, knob) for name, knob in space.items()}
        key = tuple(sorted(params.items()))
        if key not in seen:
            value = float(baseline.fit(train, params).score(val))
            seen[key] = value if math.isfinite(value) else -math.inf
        history.append((params, seen[key]))
        return seen[key]

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(objective, n_trials=n_trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    best = max(range(len(history)), key=lambda i: history[i][1])  # first of tied maxima
    params, value = history[best]
    baseline.fit(train, params)
    return Tuned(baseline=baseline, params=params, val_score=value, trials=history, budget=budget)


def decoder_score(pred_bins: np.ndarray, data: TrialArrays) -> float:
    """``decode R2`` of binned predictions ``[K, T, D]``: at the recorded samples when ``data`` has them, else
    against ``data.behavior`` at bin centres."""
    from spikefm.eval.samples import bin_centres, r2_at_samples

    if data.samples is not None:
        k, t = pred_bins.shape[:2]
        return r2_at_samples(pred_bins, bin_centres(k, t, data.bin_size), data.samples)
    if data.behavior is None:
        raise ValueError("cannot score a decoder on data without behaviour")
    return decoding_r2(pred_bins, data.behavior)
