"""Population frames: each unit's loadings on its session's top principal components, from unlabeled spikes.

SPINT's IDEncoder reads one unit's own activity, which shows its rate and burstiness but not *which way* it is
tuned when the calibration windows are not aligned to a repeated task (a continuous reaching session: a unit's
identity then says nothing about its preferred direction, and decoding fails; ``docs/results/real_data.md``).
How a unit co-varies with the rest of its population does say it: on M1's train blocks, units' loadings on the
top 8 principal components of the binned counts give canonical correlations 0.89 / 0.74 with the units' signed
velocity tuning (128 unlabeled 1 s blocks), and a causal linear decoder reading the top 32 component scores
reaches 0.75 validation R2, against 0.77 from every unit (``benchmarks/m1_population_frame.py``). In the unified
model (``population_pcs: 32``, 300 steps, seed 0, M1's validation blocks) label-free identities then decode at
0.522 R2, where without frames they decode nothing (0.000); unscaled loadings (correlations, whose spread across
units was a twentieth of the IDEncoder identities') were not picked up (0.000), hence :func:`standardized`.

The components' frame (their order, signs and rotation among components of similar variance) differs between
calibration sets, so a model reads a session's loadings through one fixed frame: :class:`PopulationFrames` holds
it per session, computed once (from the training recordings' train trials, or from a new session's calibration
windows) and never re-drawn per batch. A frame is a statistic of unlabeled spikes, not a trained parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.nn.calibration import train_trial_rows

__all__ = ["population_loadings", "standardized", "recording_frame", "PopulationFrames"]


def population_loadings(counts: np.ndarray, k: int) -> np.ndarray:
    """float32 [U, k]: each unit's correlation with the top ``k`` principal components of ``counts`` [N, U].

    Counts are z-scored per unit (a unit that never varies gets zero loadings); a component's loadings are the
    right singular vector times its singular value / sqrt(N), so an entry is the unit's correlation with the
    component's score. Each component's sign is fixed so the cube sum of its loadings is >= 0 (deterministic
    for a given set of windows). Components past ``min(N, U)`` are zeros.
    """
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] < 2:
        raise ValueError(f"population_loadings needs counts [N >= 2 samples, U units], got shape {counts.shape}")
    if k < 1:
        raise ValueError(f"population_loadings: k must be >= 1, got {k}")
    spread = counts.std(0)
    z = (counts - counts.mean(0)) / np.where(spread > 0, spread, 1.0)
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    n = min(k, vt.shape[0])
    loadings = np.zeros((counts.shape[1], k))
    loadings[:, :n] = vt[:n].T * (singular[:n] / np.sqrt(counts.shape[0]))
    signs = np.where((loadings**3).sum(0) < 0, -1.0, 1.0)
    return (loadings * signs).astype(np.float32)


def recording_frame(recording: Any, k: int, bin_size: float, starts: Sequence[float] | None = None,
                    window: float | None = None) -> np.ndarray:
    """[U, k] :func:`standardized` :func:`population_loadings` of ``recording``'s counts in ``bin_size`` bins.

    Read from the windows ``[t, t + window)`` at ``starts`` when given (a new session's calibration windows);
    otherwise from every trial of the train split (every trial when there is no ``split`` column; the whole
    recording when it has no trials), so a frame never reads validation or test data.
    """
    if starts is not None:
        if window is None:
            raise ValueError("recording_frame: give window with starts")
        spans = [(float(t), float(t) + window) for t in starts]
    elif recording.trials is not None and len(recording.trials):
        rows = train_trial_rows(recording.trials)
        spans = list(zip(recording.trials.start[rows].tolist(), recording.trials.end[rows].tolist()))
    else:
        spans = [(float(recording.start), float(recording.end))]
    rows = [_counts(recording, bin_size, t0, t1) for t0, t1 in spans]
    rows = [r for r in rows if len(r)]
    if not rows:
        raise ValueError(f"{recording.session}: no calibration data for a population frame (no train trials)")
    return standardized(population_loadings(np.concatenate(rows), k))


def standardized(loadings: np.ndarray) -> np.ndarray:
    """``loadings`` [U, k] with each component scaled to unit root-mean-square over the units (zeros stay zero).

    A session's correlations with its components are small (about 1 / sqrt(U) for most units of a large
    population), so unscaled they would reach the model far weaker than its other identity terms."""
    rms = np.sqrt((loadings.astype(np.float64) ** 2).mean(0))
    return (loadings / np.where(rms > 0, rms, 1.0)).astype(np.float32)


def _counts(recording: Any, bin_size: float, t0: float, t1: float) -> np.ndarray:
    """[T, U] counts of ``[t0, t1)`` (a store without ``bin`` is read through its window first)."""
    if not hasattr(recording, "bin"):
        recording = recording.slice(t0, t1)
    return recording.bin(bin_size, t0, t1)


class PopulationFrames(nn.Module):
    """Unit key -> its loadings [k] in its session's fixed population frame (:func:`population_loadings`).

    Sessions registered with ``permanent=True`` (the training recordings') stay until the model is discarded;
    the others (a new session's, from its calibration windows) go with :meth:`forget`. The table travels in
    the module's extra state, so a saved model keeps its frames.
    """

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k
        self._sessions: dict[str, tuple[tuple[str, ...], Tensor, bool]] = {}  # session -> (keys, [U, k], permanent)
        self._index: dict[str, int] = {}
        self._table = torch.zeros(0, k)

    def __contains__(self, session: object) -> bool:
        return session in self._sessions

    def register(self, session: str, unit_keys: Sequence[str], loadings: np.ndarray | Tensor,
                 permanent: bool = False) -> None:
        """Store ``loadings`` [U, k] for ``unit_keys`` of ``session`` (replacing its earlier frame)."""
        loadings = torch.as_tensor(np.asarray(loadings), dtype=torch.float32)
        if loadings.shape != (len(unit_keys), self.k):
            raise ValueError(f"{session}: loadings of shape {tuple(loadings.shape)} for {len(unit_keys)} units "
                             f"and {self.k} components")
        self._sessions[session] = (tuple(unit_keys), loadings, permanent)
        self._rebuild()

    def forget(self, session: str | None = None, permanent: bool = False) -> None:
        """Drop ``session``'s frame (None: every session's) unless it is permanent (``permanent=True``: anyway)."""
        drop = [s for s, (_, _, kept) in self._sessions.items()
                if (session is None or s == session) and (permanent or not kept)]
        for name in drop:
            del self._sessions[name]
        if drop:
            self._rebuild()

    def _rebuild(self) -> None:
        keys = [key for unit_keys, _, _ in self._sessions.values() for key in unit_keys]
        self._index = {key: row for row, key in enumerate(keys)}
        tables = [loadings for _, loadings, _ in self._sessions.values()]
        self._table = torch.cat(tables) if tables else torch.zeros(0, self.k)

    def forward(self, unit_keys: Sequence[str], sessions: Sequence[str], device: torch.device) -> Tensor:
        """[len(unit_keys), k] the rows of ``unit_keys`` (of the ``sessions`` their batch holds)."""
        missing = sorted(set(sessions) - set(self._sessions))
        if missing:
            raise ValueError(f"no population frame for session(s) {missing}: a model with population_pcs reads "
                             "each session through its fixed frame; calibrate(recording) first (a training "
                             "session's frame is made when the model is built from its recordings)")
        rows = torch.as_tensor([self._index[key] for key in unit_keys], dtype=torch.long)
        return self._table[rows].to(device)

    def get_extra_state(self) -> dict[str, Any]:
        return {s: {"keys": list(keys), "loadings": loadings, "permanent": permanent}
                for s, (keys, loadings, permanent) in self._sessions.items()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._sessions = {s: (tuple(v["keys"]), torch.as_tensor(v["loadings"], dtype=torch.float32),
                              bool(v["permanent"])) for s, v in (state or {}).items()}
        self._rebuild()
