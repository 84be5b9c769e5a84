"""Scores exactly as the Neural Latents Benchmark defines them (``nlb_tools/evaluation.py``).

numpy in, float out. Shape legend:

- ``B`` trials, ``T`` time bins, ``N`` neurons, ``D`` behaviour dimensions, ``C`` conditions, ``S`` samples.
- Neural arrays are ``[B, T, N]`` or ``[S, N]``; behaviour is ``[B, T, D]`` or ``[S, D]``.
- Rates are **expected counts per bin** (what a Poisson model predicts for one bin), never Hz.

What each score means, as NLB computes it:

- **bits per spike** (:func:`bits_per_spike`, :func:`co_bps`, :func:`fp_bps`): the Poisson log-likelihood gained
  over a null that predicts each neuron's mean count (over every trial and bin of the evaluated array), pooled over
  all neurons and divided by the total number of spikes, in bits. co-bps scores held-out neurons; fp-bps scores
  the forward-prediction window with held-in and held-out neurons stacked along the neuron axis.
- **velocity R2** (:func:`velocity_r2`): ridge regression (intercept fitted, alpha from a 5-fold contiguous grid
  search on the train split, like ``GridSearchCV(Ridge())``) from rates (held-in and held-out stacked) to
  behaviour, samples = trials x time flattened, R2 averaged uniformly over behaviour dimensions on the eval split.
- **PSTH R2** (:func:`psth_r2`): predicted rates averaged over each condition's eval trials against the true
  smoothed PSTH, R2 over all condition x time rows, averaged uniformly over neurons.
- **behaviour R2** (:func:`decoding_r2`): for supervised decoders, R2 variance-weighted over dimensions (FALCON).

One name per metric (the labels every table prints, :data:`METRIC_LABELS`):

- ``vel R2`` (:data:`VEL_R2`) is NLB's velocity R2 only: ridge from *rates* to behaviour, uniform over dimensions.
- ``decode R2`` (:data:`DECODE_R2`) is a decoder's own R2 (its output against the recorded behaviour),
  **variance-weighted** over dimensions (FALCON's choice; on z-scored dims it equals the uniform mean), scored at
  the recorded behaviour samples (:mod:`spikefm.eval.samples`).
- ``position R2`` (:data:`POSITION_R2`) is ``decode R2`` where the decoded series is a position
  (:func:`decoder_metric` picks the label from the series name).

Edge cases (all tested):

- NaN *counts* mark unobserved bins and are left out of every sum, as NLB does (it pads variable-length trials
  with NaN); rates at those bins are ignored, even if NaN.
- NaN rates at an observed bin, infinite or negative rates are a ``ValueError``.
- Zero rates would give ``log(0)``: they are replaced by ``1e-9`` on a copy, with a warning (NLB does the same,
  but on the caller's array).
- A neuron with no spikes has a null mean of 0, replaced by ``1e-9`` silently (NLB passes
  ``zero_warning=False`` for the null). Its null NLL is ``1e-9`` per bin, so it contributes almost exactly
  ``-sum(rates)`` (in nats) to the pooled numerator: predicting zero for a silent neuron costs nothing, predicting
  spikes for it is penalised. It adds nothing to the denominator.
- Zero spikes in the whole evaluated array makes bits per spike undefined: ``ValueError``.

>>> import numpy as np
>>> counts = np.array([[[1.0], [0.0]]])  # one trial, two bins, one neuron; null rate = 0.5
>>> round(bits_per_spike(np.array([[[1.0], [1e-9]]]), counts), 3)
1.0
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
from scipy.special import gammaln

__all__ = [
    "CO_BPS",
    "FP_BPS",
    "VEL_R2",
    "PSTH_R2",
    "DECODE_R2",
    "POSITION_R2",
    "BITS_PER_SPIKE",
    "ENC_BPS",
    "METRIC_LABELS",
    "decoder_metric",
    "ZERO_RATE",
    "poisson_nll_total",
    "bits_per_spike",
    "bits_per_spike_per_neuron",
    "co_bps",
    "fp_bps",
    "stack_heldin_heldout",
    "r2_score",
    "ridge_fit",
    "ridge_predict",
    "ridge_cv",
    "velocity_r2",
    "decoding_r2",
    "smooth_psth",
    "psth_r2",
    "NLB_ALPHAS",
]

#: Metric labels: the one name each score carries in every table, JSON file and log line.
CO_BPS = "co-bps"
FP_BPS = "fp-bps"
VEL_R2 = "vel R2"
PSTH_R2 = "psth R2"
DECODE_R2 = "decode R2"
POSITION_R2 = "position R2"
BITS_PER_SPIKE = "bits/spike"
ENC_BPS = "enc bps"
METRIC_LABELS: dict[str, str] = {
    CO_BPS: "co-smoothing bits per spike on held-out neurons (NLB, pooled)",
    FP_BPS: "forward-prediction bits per spike (NLB, pooled, held-in and held-out neurons)",
    VEL_R2: "NLB velocity R2: ridge from predicted rates to behaviour, uniform average over dimensions",
    PSTH_R2: "NLB PSTH R2, uniform average over neurons",
    DECODE_R2: "a decoder's own R2 at the recorded behaviour samples, variance-weighted over dimensions",
    POSITION_R2: "decode R2 of a position series (variance-weighted over dimensions)",
    BITS_PER_SPIKE: "bits per spike of all neurons (NLB pooled definition)",
    ENC_BPS: "encoding: bits per spike of all neurons predicted from the behaviour alone (NLB pooled definition)",
}


def decoder_metric(behavior_key: str | None) -> str:
    """The label of a decoder's R2 on series ``behavior_key``: ``position R2`` for a position, else ``decode R2``.

    >>> decoder_metric("position"), decoder_metric("hand_vel"), decoder_metric("cursor_pos")
    ('position R2', 'decode R2', 'position R2')
    """
    key = (behavior_key or "").lower()
    return POSITION_R2 if "position" in key or key.endswith("pos") or "_pos_" in key else DECODE_R2


#: What NLB substitutes for a zero rate before taking its log.
ZERO_RATE = 1e-9
#: NLB's ridge alpha grid for velocity decoding.
NLB_ALPHAS = np.logspace(-4, 0, 9)

Multioutput = Literal["variance_weighted", "uniform_average", "raw_values"]


# --------------------------------------------------------------------------- Poisson likelihood / bits per spike


def _as_float(x: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 1:
        raise ValueError(f"{name} must be an array with a neuron axis last, got a scalar")
    return arr


def _observed(rates: np.ndarray, counts: np.ndarray, *, warn_zero: bool) -> tuple[np.ndarray, np.ndarray]:
    """Checks rates and counts and returns the observed (non-NaN count) entries as 1-D copies.

    Zero rates become :data:`ZERO_RATE` in the returned copy; the caller's arrays are never written.
    """
    rates = _as_float(rates, "rates")
    counts = _as_float(counts, "counts")
    if rates.shape != counts.shape:
        raise ValueError(f"rates and counts must have the same shape, got {rates.shape} and {counts.shape}")
    observed = ~np.isnan(counts)
    y = counts[observed]
    lam = rates[observed]  # boolean indexing copies, so the replacement below never reaches the caller
    if np.any(np.isinf(y)) or np.any(y < 0):
        raise ValueError("counts must be non-negative and finite (NaN marks an unobserved bin)")
    if np.any(np.isnan(lam)):
        raise ValueError(
            f"NaN rate predictions at {int(np.isnan(lam).sum())} observed bins; "
            "rates may be NaN only where counts are NaN"
        )
    if np.any(np.isinf(lam)):
        raise ValueError(f"infinite rate predictions at {int(np.isinf(lam).sum())} observed bins")
    if np.any(lam < 0):
        raise ValueError(f"negative rate predictions at {int((lam < 0).sum())} observed bins")
    zero = lam == 0
    if np.any(zero):
        if warn_zero:
            warnings.warn(
                f"{int(zero.sum())} zero rate predictions replaced by {ZERO_RATE} (on a copy) before taking the log",
                RuntimeWarning,
                stacklevel=3,
            )
        lam[zero] = ZERO_RATE
    return lam, y


def _nll_terms(lam: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-entry Poisson NLL: ``lambda - y ln(lambda) + ln Gamma(y + 1)``."""
    return lam - y * np.log(lam) + gammaln(y + 1.0)


def poisson_nll_total(rates: np.ndarray, counts: np.ndarray) -> float:
    """Total Poisson negative log-likelihood (nats) of ``counts`` under ``rates``, as NLB sums it.

    Args:
        rates: expected counts per bin, any shape (typically ``[B, T, N]``).
        counts: observed counts, same shape; NaN marks an unobserved bin and is skipped.

    Returns:
        ``sum(lambda - y ln(lambda) + ln Gamma(y + 1))`` over observed entries.

    Raises:
        ValueError: shape mismatch, NaN / infinite / negative rates at observed bins, negative counts.
    """
    lam, y = _observed(rates, counts, warn_zero=True)
    return float(np.sum(_nll_terms(lam, y)))


def _null_rates(counts: np.ndarray) -> np.ndarray:
    """Each neuron's mean count over every other axis (NaN-aware), broadcast to ``counts.shape``."""
    axes = tuple(range(counts.ndim - 1))
    with warnings.catch_warnings():
        # an all-NaN neuron has no observed bins, so its null is never used; silence numpy's empty-mean warning
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(counts, axis=axes, keepdims=True)
    return np.broadcast_to(mean, counts.shape)


def _total_spikes(counts: np.ndarray) -> float:
    total = float(np.nansum(counts))
    if total <= 0:
        raise ValueError(
            "bits per spike is undefined: the evaluated counts hold no spikes (total = 0); "
            "evaluate on more trials or neurons"
        )
    return total


def bits_per_spike(rates: np.ndarray, counts: np.ndarray, *, null_rates: np.ndarray | None = None) -> float:
    """NLB bits per spike, pooled over all neurons.

    ``(NLL_null - NLL_model) / total spikes / ln 2``, where the null predicts each neuron's mean count over all
    trials and bins of ``counts``. Perfect knowledge of the rates scores > 0; the null scores exactly 0.

    Args:
        rates: predicted expected counts per bin, ``[B, T, N]`` or ``[S, N]``.
        counts: observed counts, same shape (NaN = unobserved bin).
        null_rates: the null's expected count per neuron, ``[N]`` (default: each neuron's mean of ``counts``). A
            bootstrap passes the whole evaluation set's means, so a resample is scored against the null of the
            point estimate rather than a null refitted to the resample (which biases the replicates low).

    Returns:
        Bits per spike (float).

    Raises:
        ValueError: see :func:`poisson_nll_total`; also when ``counts`` holds no spikes.
    """
    counts = _as_float(counts, "counts")
    total = _total_spikes(counts)
    nll_model = poisson_nll_total(rates, counts)
    null = _null_rates(counts) if null_rates is None else np.broadcast_to(np.asarray(null_rates, float), counts.shape)
    lam_null, y = _observed(null, counts, warn_zero=False)
    nll_null = float(np.sum(_nll_terms(lam_null, y)))
    return float((nll_null - nll_model) / total / np.log(2.0))


def bits_per_spike_per_neuron(rates: np.ndarray, counts: np.ndarray, *, reduce: bool = True) -> float | np.ndarray:
    """Bits per spike computed neuron by neuron, then averaged (MtM / NEDS style).

    This is **not** comparable with NLB's pooled :func:`bits_per_spike`: pooling weights each neuron by its spike
    count, the average here weights every neuron equally, so sparse neurons move it much more.

    Args:
        rates: predicted expected counts per bin, ``[B, T, N]`` or ``[S, N]``.
        counts: observed counts, same shape (NaN = unobserved bin).
        reduce: True returns the mean over neurons that spiked; False returns the ``[N]`` vector, NaN for
            neurons with no spikes (their bits per spike is undefined).

    Returns:
        A float, or an ``[N]`` array when ``reduce`` is False.

    Raises:
        ValueError: as :func:`bits_per_spike` (zero spikes in total included).
    """
    rates = _as_float(rates, "rates")
    counts = _as_float(counts, "counts")
    _total_spikes(counts)
    _observed(rates, counts, warn_zero=True)  # validates once, and warns once about zeros
    null = _null_rates(counts)
    n = counts.shape[-1]
    per_neuron = np.full(n, np.nan)
    flat_rates = rates.reshape(-1, n)
    flat_counts = counts.reshape(-1, n)
    flat_null = null.reshape(-1, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the zero-rate warning was raised above, once
        for i in range(n):
            spikes = np.nansum(flat_counts[:, i])
            if spikes <= 0:
                continue
            lam, y = _observed(flat_rates[:, i], flat_counts[:, i], warn_zero=False)
            lam0, _ = _observed(flat_null[:, i], flat_counts[:, i], warn_zero=False)
            gain = np.sum(_nll_terms(lam0, y)) - np.sum(_nll_terms(lam, y))
            per_neuron[i] = gain / spikes / np.log(2.0)
    if not reduce:
        return per_neuron
    return float(np.nanmean(per_neuron))


def co_bps(eval_rates_heldout: np.ndarray, eval_spikes_heldout: np.ndarray) -> float:
    """Co-smoothing bits per spike: :func:`bits_per_spike` on held-out neurons of the eval trials.

    Args:
        eval_rates_heldout: predicted rates of held-out neurons, ``[B, T, N_out]``.
        eval_spikes_heldout: their observed counts, ``[B, T, N_out]``.
    """
    return bits_per_spike(eval_rates_heldout, eval_spikes_heldout)


def stack_heldin_heldout(heldin: np.ndarray, heldout: np.ndarray) -> np.ndarray:
    """Concatenates held-in and held-out arrays along the neuron (last) axis, held-in first, as NLB does.

    Args:
        heldin: ``[..., N_in]``.
        heldout: ``[..., N_out]`` with the same leading shape.

    Returns:
        ``[..., N_in + N_out]``.
    """
    heldin = np.asarray(heldin)
    heldout = np.asarray(heldout)
    if heldin.shape[:-1] != heldout.shape[:-1]:
        raise ValueError(
            f"held-in and held-out arrays must share every axis but the last, got {heldin.shape} and {heldout.shape}"
        )
    return np.concatenate([heldin, heldout], axis=-1)


def fp_bps(rates_forward: np.ndarray, spikes_forward: np.ndarray) -> float:
    """Forward-prediction bits per spike: :func:`bits_per_spike` on the window after each eval trial.

    NLB scores held-in and held-out neurons together; stack them with :func:`stack_heldin_heldout` first.

    Args:
        rates_forward: predicted rates in the forward window (NLB: 200 ms), ``[B, T_fp, N_in + N_out]``.
        spikes_forward: observed counts there, same shape.
    """
    return bits_per_spike(rates_forward, spikes_forward)


# --------------------------------------------------------------------------- R2


def r2_score(
    pred: np.ndarray,
    target: np.ndarray,
    *,
    multioutput: Multioutput = "variance_weighted",
) -> float | np.ndarray:
    """Coefficient of determination, matching ``sklearn.metrics.r2_score(target, pred)`` (note the order here).

    Per output ``1 - SS_res / SS_tot``. A constant target output scores 1.0 when predicted perfectly and 0.0
    otherwise (sklearn's ``force_finite``). ``variance_weighted`` weights outputs by their target variance and
    falls back to uniform weights when every output is constant, as sklearn does.

    Args:
        pred: predictions, ``[S]`` or ``[S, D]``.
        target: true values, same shape.
        multioutput: ``"variance_weighted"`` (behaviour decoding, FALCON), ``"uniform_average"`` (sklearn's
            default; NLB's velocity and PSTH R2) or ``"raw_values"`` (the ``[D]`` vector).

    Returns:
        A float, or an ``[D]`` array for ``raw_values``.

    Raises:
        ValueError: shape mismatch, fewer than two samples, non-finite values, unknown ``multioutput``.
    """
    pred = np.asarray(pred, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {pred.shape} and {target.shape}")
    if pred.ndim == 1:
        pred, target = pred[:, None], target[:, None]
    if pred.ndim != 2:
        raise ValueError(f"r2_score takes [samples] or [samples, outputs], got {pred.ndim} axes; flatten first")
    if pred.shape[0] < 2:
        raise ValueError(f"R2 needs at least two samples, got {pred.shape[0]}")
    if not (np.all(np.isfinite(pred)) and np.all(np.isfinite(target))):
        raise ValueError("r2_score got NaN or infinite values; drop unobserved samples first")
    if multioutput not in ("variance_weighted", "uniform_average", "raw_values"):
        raise ValueError(
            f"unknown multioutput {multioutput!r}; use 'variance_weighted', 'uniform_average' or 'raw_values'"
        )
    numerator = np.sum((target - pred) ** 2, axis=0)
    denominator = np.sum((target - target.mean(axis=0)) ** 2, axis=0)
    scores = np.ones(numerator.shape)
    nonzero_den = denominator != 0
    nonzero_num = numerator != 0
    valid = nonzero_den & nonzero_num
    scores[valid] = 1.0 - numerator[valid] / denominator[valid]
    scores[nonzero_num & ~nonzero_den] = 0.0
    if multioutput == "raw_values":
        return scores
    if multioutput == "variance_weighted" and np.any(nonzero_den):
        return float(np.average(scores, weights=denominator))
    return float(np.mean(scores))


def decoding_r2(pred: np.ndarray, target: np.ndarray, *, multioutput: Multioutput = "variance_weighted") -> float:
    """Behaviour-decoding R2 for supervised models: samples flattened over trials x time, variance-weighted.

    Samples whose target is NaN in any dimension are dropped (unobserved behaviour), as NLB does for velocity.

    Args:
        pred: decoded behaviour, ``[B, T, D]`` or ``[S, D]``.
        target: true behaviour, same shape.
        multioutput: see :func:`r2_score`.
    """
    pred2, target2 = _flatten_pair(pred, target, "pred", "target")
    keep = ~np.any(np.isnan(target2), axis=1)
    if np.any(np.isnan(pred2[keep])):
        raise ValueError("NaN behaviour predictions where the target is observed")
    return float(r2_score(pred2[keep], target2[keep], multioutput=multioutput))


# --------------------------------------------------------------------------- ridge regression (sklearn Ridge)


def _flatten(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3:
        return x.reshape(-1, x.shape[2])
    if x.ndim == 2:
        return x
    if x.ndim == 1:
        return x[:, None]
    raise ValueError(f"{name} must be [trials, time, features], [samples, features] or [samples], got shape {x.shape}")


def _flatten_pair(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> tuple[np.ndarray, np.ndarray]:
    a2, b2 = _flatten(a, name_a), _flatten(b, name_b)
    if a2.shape[0] != b2.shape[0]:
        raise ValueError(
            f"{name_a} and {name_b} must have the same samples (trials x time), got {np.shape(a)} and {np.shape(b)}"
        )
    return a2, b2


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression with an unpenalised intercept, as ``sklearn.linear_model.Ridge(alpha)`` fits it.

    Minimises ``||y - x W - b||^2 + alpha ||W||^2`` by centring and an SVD of the centred inputs.

    Args:
        x: inputs, ``[S, F]``.
        y: targets, ``[S, D]``.
        alpha: L2 penalty (>= 0).

    Returns:
        ``(W [F, D], b [D])``.
    """
    return _ridge_path(np.asarray(x, np.float64), np.asarray(y, np.float64), np.array([alpha], dtype=np.float64))[0]


def _ridge_path(x: np.ndarray, y: np.ndarray, alphas: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ridge solutions for several alphas sharing one SVD."""
    if np.any(alphas < 0):
        raise ValueError(f"ridge alphas must be >= 0, got {alphas}")
    x_mean = x.mean(axis=0)
    y_mean = y.mean(axis=0)
    xc = x - x_mean
    yc = y - y_mean
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    uty = u.T @ yc  # [K, D]
    out = []
    for alpha in alphas:
        denom = s**2 + alpha
        # zero singular values with alpha = 0 carry no signal: their coefficient is 0 (minimum-norm solution)
        d = np.divide(s, denom, out=np.zeros_like(s), where=denom > 0)
        w = vt.T @ (d[:, None] * uty)  # [F, D]
        out.append((w, y_mean - x_mean @ w))
    return out


def ridge_predict(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``x @ w + b`` for ``x [S, F]``, ``w [F, D]``, ``b [D]``."""
    return np.asarray(x, np.float64) @ w + b


def _kfold_slices(n: int, n_folds: int) -> list[slice]:
    """Contiguous folds like ``sklearn.model_selection.KFold(n_folds)`` without shuffling."""
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    if n < n_folds:
        raise ValueError(f"cannot split {n} samples into {n_folds} folds")
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    stops = np.cumsum(sizes)
    return [slice(int(stop - size), int(stop)) for stop, size in zip(stops, sizes)]


def ridge_cv(
    x: np.ndarray,
    y: np.ndarray,
    *,
    alphas: np.ndarray = NLB_ALPHAS,
    n_folds: int = 5,
    multioutput: Multioutput = "uniform_average",
) -> tuple[float, np.ndarray, np.ndarray]:
    """Chooses the ridge alpha by k-fold CV and refits on all data, like ``GridSearchCV(Ridge(), {'alpha': ...})``.

    Folds are contiguous (no shuffling); the score is the mean fold R2; ties go to the earlier alpha in the grid.

    Args:
        x: inputs, ``[S, F]``.
        y: targets, ``[S, D]``.
        alphas: grid of penalties.
        n_folds: number of folds.
        multioutput: how fold R2 averages outputs (sklearn's ``Ridge.score`` uses ``uniform_average``).

    Returns:
        ``(best_alpha, W [F, D], b [D])``.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    alphas = np.atleast_1d(np.asarray(alphas, np.float64))
    if alphas.size == 0:
        raise ValueError("alphas must hold at least one value")
    scores = np.zeros((len(alphas), n_folds))
    for k, test in enumerate(_kfold_slices(x.shape[0], n_folds)):
        train = np.ones(x.shape[0], dtype=bool)
        train[test] = False
        for a, (w, b) in enumerate(_ridge_path(x[train], y[train], alphas)):
            scores[a, k] = r2_score(ridge_predict(x[test], w, b), y[test], multioutput=multioutput)
    best = int(np.argmax(scores.mean(axis=1)))  # argmax returns the first of tied maxima
    w, b = _ridge_path(x, y, alphas[best : best + 1])[0]
    return float(alphas[best]), w, b


def velocity_r2(
    train_rates: np.ndarray,
    train_vel: np.ndarray,
    eval_rates: np.ndarray,
    eval_vel: np.ndarray,
    alphas: np.ndarray = NLB_ALPHAS,
    n_folds: int = 5,
) -> float:
    """NLB velocity R2: ridge from rates to behaviour fitted on the train split, scored on the eval split.

    Samples are trials x time flattened (in that order, so CV folds are contiguous blocks of trials). Samples whose
    behaviour is NaN (first dimension, as NLB checks) are dropped on both splits. Rates should be held-in and
    held-out stacked (:func:`stack_heldin_heldout`) and the behaviour already lagged (MC_Maze: 100 ms).

    Args:
        train_rates: ``[B_tr, T, N]`` or ``[S_tr, N]``.
        train_vel: ``[B_tr, T, D]`` or ``[S_tr, D]``.
        eval_rates: ``[B_ev, T, N]`` or ``[S_ev, N]``.
        eval_vel: ``[B_ev, T, D]`` or ``[S_ev, D]``.
        alphas: ridge grid (NLB: ``logspace(-4, 0, 9)``).
        n_folds: CV folds (GridSearchCV's default, 5).

    Returns:
        R2 on the eval split, uniform average over behaviour dimensions.

    Raises:
        ValueError: NaN rates where behaviour is observed, mismatched shapes.
    """
    x_tr, y_tr = _flatten_pair(train_rates, train_vel, "train_rates", "train_vel")
    x_ev, y_ev = _flatten_pair(eval_rates, eval_vel, "eval_rates", "eval_vel")
    if x_tr.shape[1] != x_ev.shape[1] or y_tr.shape[1] != y_ev.shape[1]:
        raise ValueError(
            f"train and eval must have the same neurons and behaviour dims, got rates {x_tr.shape[1]} vs "
            f"{x_ev.shape[1]} and behaviour {y_tr.shape[1]} vs {y_ev.shape[1]}"
        )
    keep_tr = ~np.isnan(y_tr[:, 0])
    keep_ev = ~np.isnan(y_ev[:, 0])
    x_tr, y_tr, x_ev, y_ev = x_tr[keep_tr], y_tr[keep_tr], x_ev[keep_ev], y_ev[keep_ev]
    if np.any(np.isnan(x_tr)) or np.any(np.isnan(x_ev)):
        raise ValueError("NaN rate predictions where behaviour is observed")
    _, w, b = ridge_cv(x_tr, y_tr, alphas=alphas, n_folds=n_folds, multioutput="uniform_average")
    return float(r2_score(ridge_predict(x_ev, w, b), y_ev, multioutput="uniform_average"))


# --------------------------------------------------------------------------- PSTH


def _check_conditions(conditions: np.ndarray, n_trials: int) -> np.ndarray:
    cond = np.asarray(conditions)
    if cond.shape != (n_trials,):
        raise ValueError(f"conditions must be one integer per trial, shape ({n_trials},), got {cond.shape}")
    if cond.size and (not np.issubdtype(cond.dtype, np.integer) or cond.min() < 0):
        raise ValueError("conditions must be non-negative integer condition indices (0 .. C-1)")
    return cond.astype(np.int64)


def smooth_psth(
    spikes: np.ndarray,
    conditions: np.ndarray,
    bin_size: float,
    kernel_sd: float = 0.07,
    *,
    n_conditions: int | None = None,
) -> np.ndarray:
    """True PSTH: Gaussian-smoothed counts averaged over each condition's trials.

    NLB smooths the 1 ms continuous spike trains and then sums to the bin width; the kernel sd is per dataset
    (MC_Maze and DMFC_RSG 70 ms, Area2_Bump 40 ms, MC_Maze scaling 50 ms). Here counts are already binned and cut
    into trials, so each trial is smoothed on its own with zero padding at its edges (see
    :func:`spikefm.eval.baselines.smooth_spikes`). Units stay expected counts per bin, like the rates it is compared to.

    Args:
        spikes: counts, ``[B, T, N]``.
        conditions: condition index of each trial, ``[B]`` integers in ``0 .. C-1``.
        bin_size: bin width in seconds.
        kernel_sd: Gaussian sd in seconds.
        n_conditions: ``C``; defaults to ``max(conditions) + 1``. Conditions with no trials are all NaN.

    Returns:
        ``[C, T, N]`` PSTH.
    """
    from spikefm.eval.baselines import smooth_spikes  # baselines imports this module; import here to avoid a cycle

    spikes = np.asarray(spikes, dtype=np.float64)
    if spikes.ndim != 3:
        raise ValueError(f"spikes must be [trials, time, neurons], got shape {spikes.shape}")
    cond = _check_conditions(conditions, spikes.shape[0])
    n_cond = int(cond.max()) + 1 if n_conditions is None else int(n_conditions)
    if cond.size and cond.max() >= n_cond:
        raise ValueError(f"condition index {int(cond.max())} is out of range for n_conditions={n_cond}")
    smoothed = smooth_spikes(spikes, bin_size=bin_size, kernel_sd=kernel_sd)
    psth = np.full((n_cond,) + spikes.shape[1:], np.nan)
    for c in range(n_cond):
        members = cond == c
        if np.any(members):
            psth[c] = smoothed[members].mean(axis=0)
    return psth


def _shift_trial(trial: np.ndarray, shift: int) -> np.ndarray:
    """NLB's jitter: positive shifts move a trial later (NaN in front), negative earlier (NaN at the end)."""
    if shift == 0:
        return trial
    out = np.full_like(trial, np.nan)
    if abs(shift) >= trial.shape[0]:
        return out
    if shift > 0:
        out[shift:] = trial[:-shift]
    else:
        out[:shift] = trial[-shift:]
    return out


def psth_r2(
    eval_rates: np.ndarray,
    conditions: np.ndarray,
    true_psth: np.ndarray,
    *,
    jitter: np.ndarray | None = None,
) -> float:
    """NLB PSTH R2: predicted rates averaged per condition vs the true PSTH, over condition x time, per neuron.

    For each condition with eval trials, the predicted PSTH is the mean of its trials' rates; time bins where the
    true PSTH is NaN (first neuron, as NLB checks) are dropped; all conditions' rows are stacked and R2 is averaged
    uniformly over neurons. Conditions without eval trials are skipped.

    Args:
        eval_rates: predicted rates, ``[B, T, N]`` (held-in and held-out stacked, as NLB scores them).
        conditions: condition index of each eval trial, ``[B]`` integers indexing ``true_psth``.
        true_psth: ``[C, T, N]`` (see :func:`smooth_psth`).
        jitter: optional per-trial shift in bins (NLB's DMFC_RSG); a trial is shifted before averaging.

    Returns:
        R2 (float), uniform over neurons.

    Raises:
        ValueError: mismatched shapes, unknown condition indices, NaN predictions where the PSTH is defined.
    """
    rates = np.asarray(eval_rates, dtype=np.float64)
    psth = np.asarray(true_psth, dtype=np.float64)
    if rates.ndim != 3 or psth.ndim != 3:
        raise ValueError(f"eval_rates must be [B, T, N] and true_psth [C, T, N], got {rates.shape} and {psth.shape}")
    if rates.shape[1:] != psth.shape[1:]:
        raise ValueError(f"eval_rates {rates.shape} and true_psth {psth.shape} must share time and neuron axes")
    cond = _check_conditions(conditions, rates.shape[0])
    if cond.size and cond.max() >= psth.shape[0]:
        raise ValueError(f"condition index {int(cond.max())} has no PSTH (true_psth holds {psth.shape[0]} conditions)")
    shifts = np.zeros(rates.shape[0], dtype=np.int64) if jitter is None else np.asarray(jitter).astype(np.int64)
    if shifts.shape != (rates.shape[0],):
        raise ValueError(f"jitter must be one integer per trial, shape ({rates.shape[0]},), got {shifts.shape}")
    true_rows, pred_rows = [], []
    for c in range(psth.shape[0]):
        members = np.flatnonzero(cond == c)
        if members.size == 0:
            continue
        pred = np.mean([_shift_trial(rates[i], int(shifts[i])) for i in members], axis=0)  # [T, N]
        defined = ~np.isnan(psth[c, :, 0])
        if np.any(np.isnan(pred[defined])):
            raise ValueError(f"NaN rate predictions where the PSTH of condition {c} is defined")
        true_rows.append(psth[c][defined])
        pred_rows.append(pred[defined])
    if not true_rows:
        raise ValueError("no condition of true_psth has eval trials; nothing to score")
    return float(r2_score(np.vstack(pred_rows), np.vstack(true_rows), multioutput="uniform_average"))
