"""Baselines every score table carries, built with numpy / scipy (optuna drives their search).

One file per idea:

- :mod:`~.smoothing`: NLB's spike-smoothing baseline for co-smoothing (:class:`SmoothingBaseline`; tunable
  :class:`Smoothing`, knobs kernel width and GLM alpha, centred (acausal) or causal kernel).
- :mod:`~.wiener`: the Wiener filter (:class:`RidgeDecoder`; tunable :class:`Wiener`, knobs lags, ridge alpha and,
  in its acausal form, future leads capped at the compared model's window).
- :mod:`~.kalman`: the Kalman-filter decoder, closed-form fit (:class:`KalmanDecoder`; tunable :class:`Kalman`).
- :mod:`~.history_glm`: a Poisson GLM on the true past spikes and the behaviour (:class:`HistoryGLM`), the
  baseline with Neuroformer's conditioning.
- :mod:`~.behavior_glm`: a Poisson GLM from the behaviour around each bin (:class:`BehaviorGLM`), the baseline
  with NEDS's encoding information.
- :mod:`~.masked`: MtM's four masked-prediction tasks (:class:`MaskedSmoothing` for neuron / intra-region /
  inter-region prediction, :class:`ForwardGLM` for forward prediction), reading what the model's task shows it.
- :mod:`~.poisson_glm`: the Poisson GLM they share (:mod:`~.count_glm`: the tunable counts-from-features form);
  :mod:`~.oracle`: synthetic data's true rates, the ceiling.
- :mod:`~.tuning`: the interface a tunable baseline follows and :func:`tune_on_val`, its validation-only search.

The tunable interface (what :mod:`spikefm.eval.protocol` drives): ``baseline.name``, ``baseline.causal``,
``baseline.metric``, ``baseline.search_space() -> {knob: Choice | Range}``, ``baseline.fit(train, params)``,
``baseline.predict(data)``, ``baseline.score(data)`` (higher is better), with ``train`` / ``data`` a
:class:`~spikefm.eval.trials.TrialArrays`; ``tune_on_val(baseline, train, val, budget=8, seed=0) -> Tuned``.
:func:`make_baseline` builds one by name (:data:`BASELINES`), and :func:`baselines_for` lists those a model should
be compared with (causal models only with causal baselines).
"""

from typing import Any

from spikefm.eval.baselines.behavior_glm import BehaviorGLM
from spikefm.eval.baselines.history_glm import HistoryGLM, history_features
from spikefm.eval.baselines.kalman import Kalman, KalmanDecoder
from spikefm.eval.baselines.masked import MASKED_TASKS, ForwardGLM, MaskedSmoothing
from spikefm.eval.baselines.oracle import oracle_scores
from spikefm.eval.baselines.poisson_glm import MAX_RATE, PoissonGLM
from spikefm.eval.baselines.smoothing import (
    NLB_SMOOTHING_DEFAULTS,
    Smoothing,
    SmoothingBaseline,
    gaussian_window,
    smooth_spikes,
)
from spikefm.eval.baselines.tuning import Baseline, Choice, Knob, Range, Tuned, decoder_score, suggest, tune_on_val
from spikefm.eval.baselines.wiener import RidgeDecoder, Wiener, lagged_features

__all__ = [
    "BASELINES",
    "Baseline",
    "BehaviorGLM",
    "Choice",
    "ForwardGLM",
    "MaskedSmoothing",
    "HistoryGLM",
    "Kalman",
    "KalmanDecoder",
    "Knob",
    "MAX_RATE",
    "NLB_SMOOTHING_DEFAULTS",
    "PoissonGLM",
    "Range",
    "RidgeDecoder",
    "Smoothing",
    "SmoothingBaseline",
    "Tuned",
    "Wiener",
    "baselines_for",
    "decoder_score",
    "gaussian_window",
    "history_features",
    "lagged_features",
    "make_baseline",
    "oracle_scores",
    "smooth_spikes",
    "suggest",
    "tune_on_val",
]

#: Baseline name -> factory (keyword arguments pass through, e.g. ``window_bins`` for the acausal Wiener).
BASELINES: dict[str, Any] = {
    "smoothing": lambda **kw: Smoothing(causal=False, **kw),
    "smoothing causal": lambda **kw: Smoothing(causal=True, **kw),
    "wiener causal": lambda **kw: Wiener(causal=True, **kw),
    "wiener acausal": lambda **kw: Wiener(causal=False, **kw),
    "kalman": lambda **kw: Kalman(**kw),
    "history GLM": lambda **kw: HistoryGLM(**kw),
    "behaviour GLM": lambda **kw: BehaviorGLM(**kw),
    "forward GLM": lambda **kw: ForwardGLM(**kw),
    **{f"smoothing {task}": (lambda task: lambda **kw: MaskedSmoothing(task, **kw))(task) for task in MASKED_TASKS},
}

#: Which baselines score each kind of task.
_TASK_BASELINES = {
    "self_supervised": ("smoothing", "smoothing causal"),
    "decoding": ("wiener causal", "wiener acausal", "kalman"),
    "generation": ("history GLM",),
    "encoding": ("behaviour GLM",),
    "forward_pred": ("forward GLM",),
    **{task: (f"smoothing {task}",) for task in MASKED_TASKS},
}


def make_baseline(name: str, **kwargs: Any) -> Baseline:
    """A fresh tunable baseline by name (see :data:`BASELINES`)."""
    if name not in BASELINES:
        raise KeyError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}")
    return BASELINES[name](**kwargs)


def baselines_for(task: str, *, causal: bool) -> list[str]:
    """The baselines a model of ``task`` ("self_supervised", "decoding", "generation", "encoding" or one of MtM's four masked
    tasks, "forward_pred", "neuron_pred", "intra_region", "inter_region") is compared with.

    A causal model is compared with causal baselines only; an acausal one with both forms (the acausal form is
    the one with equal information, the causal one shows what reading the future is worth).
    """
    if task not in _TASK_BASELINES:
        raise KeyError(f"unknown task {task!r}; choose from {sorted(_TASK_BASELINES)}")
    names = _TASK_BASELINES[task]
    return [n for n in names if make_baseline(n).causal] if causal else list(names)
