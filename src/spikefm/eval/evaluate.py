"""Run a trained model over one split's trials and score it with the NLB metrics.

Self-supervised models (``outputs["log_rates"]`` [B, T, N]) are scored by co-bps on held-out
units; decoders (``outputs["behavior"]`` [B, Q, D]) by ``decode R2`` (``position R2`` for a
position series): variance-weighted R2 at the *recorded* behaviour samples, the predictions
interpolated to them (:mod:`spikefm.eval.samples`).

A model that calibrates on unlabeled trials (``calibrate(recording, trials)``, SPINT) is calibrated
on a fixed set of the scored session's non-test data before predicting (the first
``config.calibration_trials`` trials of its train split, or the trials given), so its scores do not
depend on which windows share a batch.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from spikefm.data.dataset import WindowDataset
from spikefm.data.recording import DataError, Recording
from spikefm.data.sampling import TrialWindowSampler
from spikefm.eval.metrics import CO_BPS, co_bps, decoder_metric
from spikefm.eval.samples import BehaviorSamples, decoded_r2, recorded_samples
from spikefm.tokenize.base import collate

__all__ = ["Predictions", "predict", "score", "calibration_trials", "train_trial_rows", "fixed_calibration"]


@dataclass
class Predictions:
    """A model's outputs over the windows of one split of one recording.

    Attributes:
        rates: float [K, T, N] expected counts per bin (self-supervised models), else None.
        counts: int [K, T, N] the observed counts in the same bins, else None.
        heldout: bool [N] held-out units, else None.
        behavior: float [K, Q, D] decoded behaviour (decoders), else None.
        behavior_true: float [K, Q, D] the true behaviour at the queries, else None.
        query_mask: bool [K, Q] valid queries, else None.
        starts: float [K] window starts (absolute seconds).
        query_times: float [K, Q] query times in seconds from each window's start (decoders), else None.
        behavior_key: the decoded behaviour series, else None.
        samples: the recorded samples of that series inside each window (decoders are scored there), else None.
    """

    rates: np.ndarray | None
    counts: np.ndarray | None
    heldout: np.ndarray | None
    behavior: np.ndarray | None
    behavior_true: np.ndarray | None
    query_mask: np.ndarray | None
    starts: np.ndarray
    query_times: np.ndarray | None = None
    behavior_key: str | None = None
    samples: BehaviorSamples | None = None


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    tokenizer: Callable,
    recording: Recording,
    *,
    split: str | None = "test",
    window: float = 1.0,
    align: str = "start",
    before: float = 0.0,
    batch_size: int = 32,
    pack: bool = False,
    calibration: Sequence[int] | None = None,
) -> Predictions:
    """Outputs of ``model`` (in eval mode) on every trial window of ``split``.

    Args:
        calibration: trial rows a calibrating model (SPINT) registers for this session before predicting
            (default :func:`calibration_trials`); ignored for other models.
    """
    with fixed_calibration(model, recording, calibration, scored_split=split):
        return _predict(model, tokenizer, recording, split=split, window=window, align=align, before=before,
                        batch_size=batch_size, pack=pack)


@torch.no_grad()
def _predict(model, tokenizer, recording, *, split, window, align, before, batch_size, pack) -> Predictions:
    sampler = TrialWindowSampler([recording], align=align, before=before, after=window - before, split=split)
    loader = DataLoader(
        WindowDataset([recording], tokenizer), sampler=sampler, batch_size=batch_size,
        collate_fn=partial(collate, pack=pack),
    )  # fmt: skip
    was_training = model.training
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    device = next(model.parameters()).device
    target = getattr(model, "behavior_target", None)  # a multi-task decoder names the target `behavior` decodes
    key = None
    for batch in loader:
        outputs = model(batch.to(device))
        key = _collect(parts, outputs, batch, target) or key
    model.train(was_training)
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    starts = np.array([spec.t0 for spec in sampler.epoch_windows(0)])
    samples = None
    if key is not None and key in recording.behavior:
        samples = recorded_samples(recording, starts, window, key)
    return Predictions(
        rates=joined.get("rates"),
        counts=joined.get("counts"),
        heldout=recording.units.heldout.copy() if "rates" in joined else None,
        behavior=joined.get("behavior"),
        behavior_true=joined.get("behavior_true"),
        query_mask=joined.get("query_mask"),
        starts=starts,
        query_times=joined.get("query_times"),
        behavior_key=key,
        samples=samples,
    )


def _collect(parts: dict[str, list[np.ndarray]], outputs: dict, batch, target: str | None = None) -> str | None:
    """Appends this batch's outputs to ``parts``; returns the decoded behaviour key (None if none)."""
    if "log_rates" in outputs:
        parts.setdefault("rates", []).append(outputs["log_rates"].float().exp().cpu().numpy())
        # A model whose tokens are not count vectors (NDT2 patches) returns the counts it scored.
        counts = outputs["counts"] if "counts" in outputs else batch.values
        parts.setdefault("counts", []).append(counts.cpu().numpy())
    if "behavior" in outputs:
        (key,) = batch.targets if target is None else (target,)
        parts.setdefault("behavior", []).append(outputs["behavior"].float().cpu().numpy())
        parts.setdefault("behavior_true", []).append(batch.targets[key].cpu().numpy())
        parts.setdefault("query_mask", []).append(batch.query_mask.cpu().numpy())
        parts.setdefault("query_times", []).append(batch.query_timestamps.double().cpu().numpy())
        return key
    return None


def score(predictions: Predictions) -> dict[str, float]:
    """Scores: ``co-bps`` (held-out units) and/or ``decode R2`` / ``position R2`` (decoded behaviour, at the
    recorded samples; see :mod:`spikefm.eval.metrics` for the names)."""
    scores: dict[str, float] = {}
    if predictions.rates is not None and predictions.heldout is not None and predictions.heldout.any():
        held = predictions.heldout
        scores[CO_BPS] = co_bps(predictions.rates[..., held], predictions.counts[..., held])
    if predictions.behavior is not None:
        p = predictions
        scores[decoder_metric(p.behavior_key)] = decoded_r2(p.behavior, p.query_times, p.query_mask,
                                                            p.behavior_true, p.samples)
    return scores


def train_trial_rows(recording: Recording) -> list[int]:
    """Trial rows of ``recording``'s train split (the labelled, non-scored trials).

    Raises:
        DataError: no trials table, no ``split`` column, or no train-split trial.
    """
    name = recording.source or recording.session
    if recording.trials is None or len(recording.trials) == 0:
        raise DataError(f"{name}: no trials table")
    if "split" not in recording.trials.columns:
        raise DataError(f"{name}: trials have no 'split' column, so no train trials can be chosen")
    train = np.flatnonzero(recording.trials.columns["split"].astype(str) == "train")
    if train.size == 0:
        raise DataError(f"{name}: no train-split trials")
    return train.tolist()


def calibration_trials(recording: Recording, n: int) -> list[int]:
    """The fixed calibration set of a session: the first ``n`` trials of its train split (trial rows).

    Raises:
        DataError: the session has no trials table or no train-split trials (name the trials instead).
    """
    try:
        return train_trial_rows(recording)[:n]
    except DataError as error:
        raise DataError(f"{error} to calibrate on; pass calibration=[trial rows] outside the scored split") from None


@contextmanager
def fixed_calibration(
    model: torch.nn.Module, recording: Recording, trials: Sequence[int] | None = None, *, scored_split: str | None
) -> Iterator[None]:
    """Within the block, a calibrating model (one with ``calibrate`` and ``forget``, and ``calibrates`` true where it
    has that attribute) uses a fixed calibration set of ``recording``'s session; a session it was already calibrated
    on is left as it is. Restores the model after.

    Raises:
        DataError: the calibration trials include trials of the scored ``test`` split.
    """
    calibrates = hasattr(model, "calibrate") and getattr(model, "calibrates", True)
    if not calibrates or recording.session in getattr(model, "calibrated_sessions", []):
        yield
        return
    if trials is None:
        trials = calibration_trials(recording, int(getattr(model.config, "calibration_trials", 8)))
    if scored_split == "test" and recording.trials is not None and "split" in recording.trials.columns:
        split = recording.trials.columns["split"].astype(str)[np.asarray(list(trials), dtype=np.int64)]
        if np.any(split == "test"):
            raise DataError(f"{recording.session}: calibration trials {list(trials)} include test trials")
    model.calibrate(recording, trials)
    try:
        yield
    finally:
        model.forget(recording.session)


def score_many(
    model: torch.nn.Module, tokenizer: Callable, recordings: Sequence[Recording], **kwargs
) -> dict[str, dict[str, float]]:
    """``{session: scores}`` for each recording."""
    return {rec.session: score(predict(model, tokenizer, rec, **kwargs)) for rec in recordings}
