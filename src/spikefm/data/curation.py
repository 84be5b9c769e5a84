"""Curate a pretraining corpus for a target session: rank sessions by measured similarity.

The survey's fifth lesson is that chosen data beats brute-force scale (NDT2: 5 well-chosen sessions
beat all 84). The similarity here is between *population statistics* of unlabeled activity, so it
needs no behaviour and no unit correspondence (sessions never share units): each session is read
for its first ``n_trials`` train-split trials (lazily, window by window) and summarised as a vector
invariant to the order of its units:

* ``rates``: quantiles of the units' log mean rates;
* ``fano``: quantiles of the units' Fano factors (count variance / mean over trials, per 100 ms bin);
* ``spectrum``: the top eigenvalues of the units' correlation matrix (20 ms bins), as fractions of
  the total: how low-dimensional the shared latent dynamics are;
* ``profile``: the trial-averaged population rate over the trial window (10 segments), normalised;
* ``correlations``: quantiles of pairwise unit correlations.

Each feature is z-scored over the corpus plus target; the distance is Euclidean and the ranking
ascending (most similar first).

>>> ranking = rank_sessions(target, corpus.recordings)  # doctest: +SKIP
>>> [r.session for r in ranking[:5]]  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spikefm.data.recording import DataError

__all__ = ["SessionStats", "session_stats", "rank_sessions", "Ranked", "curate"]

_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_EIGENVALUES = 8
_SEGMENTS = 10


@dataclass(frozen=True)
class SessionStats:
    """A session's unit-order-invariant summary (see the module docstring) and how it was read."""

    session: str
    vector: np.ndarray
    n_trials: int
    n_units: int


@dataclass(frozen=True)
class Ranked:
    """One corpus session's distance to the target (smaller: more similar)."""

    session: str
    distance: float
    index: int


def _train_starts(recording: Any, n_trials: int) -> np.ndarray:
    trials = recording.trials
    if trials is None or len(trials) == 0:
        raise DataError(f"{recording.session}: curation reads trials, and this recording has none")
    starts = np.asarray(trials.start)
    if "split" in trials.columns:
        starts = starts[np.asarray(trials.columns["split"]).astype(str) == "train"]
    return starts[:n_trials]


def session_stats(recording: Any, *, n_trials: int = 20, window: float = 1.0, bin_size: float = 0.02) -> SessionStats:
    """Summarise ``recording`` (a Recording or lazily opened store) from its first train trials' spikes."""
    starts = _train_starts(recording, n_trials)
    if starts.size < 2:
        raise DataError(f"{recording.session}: curation needs >= 2 train trials, found {starts.size}")
    counts = np.stack([recording.window(t0, t0 + window).recording.bin(bin_size) for t0 in starts])  # [K, T, N]
    counts = counts.astype(np.float64)
    k, t, n = counts.shape
    rates = counts.mean(axis=(0, 1)) / bin_size  # [N] Hz
    coarse = max(1, int(round(0.1 / bin_size)))
    per_100ms = counts[:, : t - t % coarse].reshape(k, -1, coarse, n).sum(2)  # [K, T', N]
    mean, var = per_100ms.mean(0), per_100ms.var(0)  # [T', N]
    valid = mean > 0
    fano = np.where(valid, var / np.maximum(mean, 1e-9), 0.0)
    fano_units = np.where(valid.any(0), fano.sum(0) / np.maximum(valid.sum(0), 1), 1.0)  # [N]; silent units: 1
    flat = counts.reshape(-1, n)  # [K*T, N]
    active = flat.std(0) > 0
    if active.sum() >= 2:
        corr = np.corrcoef(flat[:, active].T)
        eig = np.sort(np.clip(np.linalg.eigvalsh(corr), 0, None))[::-1]
        spectrum = np.zeros(_EIGENVALUES)
        spectrum[: min(_EIGENVALUES, eig.size)] = (eig / eig.sum())[:_EIGENVALUES]
        pairs = corr[np.triu_indices_from(corr, k=1)]
    else:
        spectrum, pairs = np.zeros(_EIGENVALUES), np.zeros(1)
    population = counts.sum(2).mean(0)  # [T]
    profile = np.array([seg.mean() for seg in np.array_split(population, _SEGMENTS)])
    profile = profile / max(profile.mean(), 1e-9)
    vector = np.concatenate([
        np.quantile(np.log(rates + 0.1), _QUANTILES),
        np.quantile(fano_units, _QUANTILES),
        spectrum,
        profile,
        np.quantile(pairs, _QUANTILES),
    ])
    return SessionStats(recording.session, vector, int(starts.size), n)


def rank_sessions(target: Any, candidates: Sequence[Any], *, n_trials: int = 20,
                  stats: Sequence[SessionStats] | None = None) -> list[Ranked]:
    """Candidates sorted by distance to ``target`` (the target itself, if among them, is left out).

    Args:
        stats: precomputed :func:`session_stats` of ``candidates`` (same order), to rank many targets cheaply.
    """
    target_stats = session_stats(target, n_trials=n_trials)
    stats = list(stats) if stats is not None else [session_stats(c, n_trials=n_trials) for c in candidates]
    matrix = np.stack([s.vector for s in stats] + [target_stats.vector])  # [C+1, F]
    scale = matrix.std(0)
    z = (matrix - matrix.mean(0)) / np.where(scale > 0, scale, 1.0)
    distances = np.linalg.norm(z[:-1] - z[-1], axis=1)
    order = np.argsort(distances, kind="stable")
    return [Ranked(stats[i].session, float(distances[i]), int(i)) for i in order
            if stats[i].session != target_stats.session]


def curate(target: str | Path, corpus: str | Path, k: int, out: str | Path, *, n_trials: int = 20) -> tuple[Path, list[Ranked]]:
    """Rank ``corpus``'s sessions against the ``target`` recording and write a manifest of the top ``k``.

    Args:
        target: the target session's file, or the id of a session in the corpus.
        corpus: a corpus folder or manifest.
        k: sessions to keep.
        out: the manifest to write (JSON; readable by :meth:`Corpus.open` and ``spikefm pretrain --corpus``).

    Returns:
        The manifest path and the full ranking.
    """
    from spikefm.data.corpus import Corpus, write_manifest

    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    opened = Corpus.open(corpus)
    if Path(target).exists():
        from spikefm.data.store import load

        target_recording = load(target)
    elif str(target) in opened.sessions:
        target_recording = opened.recordings[opened.sessions.index(str(target))]
    else:
        raise DataError(f"target {target!r} is neither a file nor a session of the corpus ({len(opened)} sessions)")
    ranking = rank_sessions(target_recording, opened.recordings, n_trials=n_trials)
    chosen = ranking[:k]
    path = write_manifest(
        [opened.paths[r.index] for r in chosen], out, scores={r.session: r.distance for r in ranking},
        info={"target": target_recording.session, "k": k, "similarity": "population statistics (spikefm.data.curation)",
              "n_trials": n_trials},
    )
    return path, ranking
