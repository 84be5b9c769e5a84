"""In-batch calibration for identity encoders (SPINT, unified): pool each unit's activity over the
*other* windows of its session in the batch, never its own.

A window's identities must not depend on the window's own activity (at test time calibration
data is disjoint from the decoded data). In training a session's windows are split alternately
into two folds, each pooling the other (cross-fitting: a leave-one-out mean would let the
network read the window back from the missing term); in evaluation every other window is pooled
(leave-one-out). A window alone of its session pools nothing (zeros).

Shape legend: N (window, unit) rows, h feature width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "session_folds", "pool_other_folds", "in_batch_identities", "triggered_states", "registered_triggered_states",
    "with_registered", "whiten", "calibration_starts",
    "calibration_window_counts", "train_trial_rows",
]  # fmt: skip


def session_folds(sessions: Sequence[str], training: bool) -> tuple[list[int], int]:
    """Fold of each window: its rank among its session's windows modulo the fold count.

    Returns:
        (fold per window, fold count): two folds in training, leave-one-out (as many folds as
        the largest session has windows) in evaluation.
    """
    rank, seen = [], {}
    for session in sessions:
        rank.append(seen.get(session, 0))
        seen[session] = seen.get(session, 0) + 1
    n_folds = 2 if training else max(seen.values())
    return [r % n_folds for r in rank], n_folds


def pool_other_folds(
    values: Tensor, key: Tensor, fold: Tensor, n_folds: int, contributes: Tensor | None = None
) -> Tensor:
    """Per row, the mean of ``values`` over rows of the same key in the *other* folds.

    Args:
        values: [N, h] one row per (window, unit).
        key: long [N] the unit (``"session/unit"`` vocabulary index) of each row, 0 <= key < K.
        fold: long [N] the fold of each row's window, 0 <= fold < n_folds.
        n_folds: F.
        contributes: bool [N] rows that may enter the means (default all); every row still
            gets its mean (a unit hidden in one window pools nothing from that window).

    Returns:
        [N, h]; zeros where no other fold holds a contributing row of the key.
    """
    n_keys = int(key.max()) + 1 if key.numel() else 0
    own = key * n_folds + fold  # [N] (key, fold) slot of each row
    slots, rows = (own, values) if contributes is None else (own[contributes], values[contributes])
    sums = values.new_zeros(n_folds * n_keys, values.shape[-1]).index_add(0, slots, rows)  # [K * F, h]
    n = torch.bincount(slots, minlength=n_folds * n_keys).to(values.dtype)  # [K * F]
    key_sums = sums.view(n_keys, n_folds, -1).sum(1)  # [K, h]
    key_n = n.view(n_keys, n_folds).sum(1)  # [K]
    rest = key_sums[key] - sums[own]  # [N, h]: every other fold of the row's unit
    return rest / (key_n[key] - n[own]).clamp_min(1)[:, None]


def in_batch_identities(
    encoder: nn.Module, counts: Tensor, unit_keys: Sequence[str], window: Tensor, sessions: Sequence[str],
    training: bool, contributes: Tensor | None = None,
) -> Tensor:
    """Identities [N, D] of (window, unit) rows from the *other* windows of the unit's session.

    Args:
        encoder: an :class:`~spikefm.nn.IDEncoder` (``phi`` per window, mean, ``psi``).
        counts: [N, T] each row's binned counts in its own window.
        unit_keys: N ``"session/unit"`` keys (the same unit in two windows has one key).
        window: long [N] the window of each row; ``sessions``: the session of each window.
        training: two cross-fitted folds (training) or leave-one-out (evaluation); see :func:`session_folds`.
        contributes: bool [N] rows whose activity may enter others' means (e.g. not hidden by a mask).
    """
    key, folds, n_folds = _row_folds(unit_keys, window, sessions, training)
    phi = encoder.phi(torch.log1p(counts))  # [N, h]
    return encoder.psi(pool_other_folds(phi, key, folds, n_folds, contributes=contributes))


def _row_folds(unit_keys: Sequence[str], window: Tensor, sessions: Sequence[str], training: bool
               ) -> tuple[Tensor, Tensor, int]:
    """Per row: its unit's index in the batch's key vocabulary, its window's fold; and the fold count."""
    fold, n_folds = session_folds(sessions, training)
    return _key_index(unit_keys, window.device), torch.tensor(fold, device=window.device)[window], n_folds


def _key_index(unit_keys: Sequence[str], device: torch.device) -> Tensor:
    """long [N]: each row's position in the vocabulary of distinct keys, in order of first appearance."""
    vocab: dict[str, int] = {}
    return torch.tensor([vocab.setdefault(k, len(vocab)) for k in unit_keys], device=device)


def triggered_states(
    counts: Tensor, states: Tensor, unit_keys: Sequence[str], window: Tensor, sessions: Sequence[str], training: bool,
    contributes: Tensor | None = None, ridge: float | None = None,
) -> Tensor:
    """Each (window, unit) row's spike-triggered average of the population state, from the *other* windows.

    A unit's tuning to the population's latent state, read off unlabeled activity: the mean state in the
    chunks where it fired (weighted by its counts) minus the mean state, over the other windows of its session
    (the folds of :func:`in_batch_identities`). For a Poisson unit whose log-rate is linear in a Gaussian state
    this points along its readout weights (the classic spike-triggered average); a model maps it to the unit's
    readout identity, so a unit never seen in training gets a readout from calibration spikes alone.

    Args:
        counts: [N, C] each row's spike counts per chunk of its window.
        states: [B, C, H] the model's state per window and chunk (computed without the scored units' spikes).
        unit_keys, window, sessions, training, contributes: as :func:`in_batch_identities`.
        ridge: None for the plain average; else the triggered state is *whitened*: multiplied by the inverse of the
            state covariance over the same pooled windows (their chunks), regularised by ``ridge`` times its mean
            eigenvalue (:func:`whiten`). The plain average measures ``Cov(state) w`` for a unit of readout ``w``,
            so it depends on which states the calibration windows visited; the whitened one estimates ``w``.

    Returns:
        [N, H + 1]: the centred triggered state and ``log`` of the unit's mean count per chunk (pooled rows).
    """
    key, folds, n_folds = _row_folds(unit_keys, window, sessions, training)
    pooled = pool_other_folds(_triggered_sums(counts, states, window), key, folds, n_folds, contributes=contributes)
    out = _triggered(pooled, states.shape[-1])  # means over rows: ratios of sums hold
    if ridge is None:
        return out
    pooled_windows = _window_pools(sessions, training, window, contributes)  # [B, B] which windows each pools
    inverse = _ridge_inverses(states, pooled_windows, ridge)  # [B, H, H]
    return _whiten_states(out, inverse, window)


def registered_triggered_states(counts: Tensor, states: Tensor, unit_keys: Sequence[str], window: Tensor,
                                ridge: float | None = None) -> dict[str, Tensor]:
    """Unit key -> its triggered state [H + 1] pooled over *all* the given windows (registered calibration:
    the windows are calibration data, never scored). Arguments as :func:`triggered_states`."""
    keys = list(dict.fromkeys(unit_keys))  # distinct, in order of first appearance
    sums = _triggered_sums(counts, states, window)
    pooled = sums.new_zeros(len(keys), sums.shape[1]).index_add(0, _key_index(unit_keys, counts.device), sums)
    out = _triggered(pooled, states.shape[-1])
    if ridge is not None:
        every = torch.ones(1, len(states), dtype=torch.bool, device=states.device)  # one pool: all windows
        inverse = _ridge_inverses(states, every, ridge)  # [1, H, H]
        out = _whiten_states(out, inverse, out.new_zeros(len(out), dtype=torch.long))
    return dict(zip(keys, out))


def whiten(triggered: Tensor, inverse: Tensor, pool: Tensor) -> Tensor:
    """Rows [N, H] of centred triggered states times their pool's ridge-inverse covariance ``inverse`` [P, H, H]
    (``pool``: long [N], each row's pool): the spike-triggered average made a regression estimate of the unit's
    readout (the whitened STA of Chichilnisky 2001 / Paninski 2003), independent of which states the pool visited."""
    out = torch.empty_like(triggered)
    for p in pool.unique():  # a few pools (windows); [N, H, H] of gathered inverses would not fit at scale
        rows = pool == p
        out[rows] = triggered[rows] @ inverse[p]  # symmetric
    return out


def _whiten_states(triggered: Tensor, inverse: Tensor, pool: Tensor) -> Tensor:
    """[N, H + 1] triggered states with the centred part whitened (:func:`whiten`), the log-rate column kept; in
    float32 whatever the caller's autocast (a bf16 product would not fit the float32 rows)."""
    with torch.autocast(triggered.device.type, enabled=False):
        centred = whiten(triggered[:, :-1].float(), inverse.float(), pool)
    return torch.cat([centred.to(triggered.dtype), triggered[:, -1:]], dim=1)


def _window_pools(sessions: Sequence[str], training: bool, window: Tensor, contributes: Tensor | None) -> Tensor:
    """bool [B, B]: window ``j`` is pooled by window ``i`` (same session, another fold, and it holds a contributing
    row); the folds of :func:`session_folds`."""
    fold, _ = session_folds(sessions, training)
    session = _key_index(sessions, window.device)  # [B]
    fold_t = torch.tensor(fold, device=window.device)
    calibrates = torch.zeros(len(sessions), dtype=torch.bool, device=window.device)
    calibrates[window if contributes is None else window[contributes]] = True
    return (session[:, None] == session[None]) & (fold_t[:, None] != fold_t[None]) & calibrates[None]


def _ridge_inverses(states: Tensor, pools: Tensor, ridge: float) -> Tensor:
    """[P, H, H]: per pool (bool [P, B] over windows), ``(Cov + ridge * mean eigenvalue * I)^-1`` of the pooled
    windows' chunk states ``states`` [B, C, H] (an empty pool's covariance is taken as the identity). In float32
    whatever the caller's autocast: a covariance in bf16 keeps 8 bits of mantissa, too few to invert."""
    with torch.autocast(states.device.type, enabled=False):
        states, (c, h) = states.float(), states.shape[1:]
        weights = pools.to(states.dtype)
        sums = weights @ states.sum(1)  # [P, H]
        n = pools.sum(1).to(states.dtype)[:, None] * c  # [P, 1] chunks
        second = torch.einsum("pb,bch,bck->phk", weights, states, states)  # [P, H, H]
        mean = sums / n.clamp_min(1)
        cov = second / n.clamp_min(1)[..., None] - mean[:, :, None] * mean[:, None, :]
        eye = torch.eye(h, dtype=states.dtype, device=states.device)
        cov = torch.where(n[..., None] > 0, cov, eye)  # an empty pool: the identity (its rows' averages are zero)
        scale = (torch.diagonal(cov, dim1=1, dim2=2).mean(1) * ridge).clamp_min(1e-6)  # [P]
        return torch.linalg.inv(cov + scale[:, None, None] * eye)


def _triggered_sums(counts: Tensor, states: Tensor, window: Tensor) -> Tensor:
    """Per row [N, 2H + 2]: sum of count-weighted states, spikes, sum of states, chunks."""
    own_states = states[window]  # [N, C, H]
    return torch.cat([torch.einsum("nc,nch->nh", counts, own_states), counts.sum(1, keepdim=True),
                      own_states.sum(1), counts.new_full((len(counts), 1), float(counts.shape[1]))], dim=1)


def _triggered(pooled: Tensor, width: int) -> Tensor:
    fired, spikes, state_sum, chunks = pooled.split([width, 1, width, 1], dim=1)
    centred = fired / spikes.clamp_min(1e-3) - state_sum / chunks.clamp_min(1)
    return torch.cat([centred, torch.log(spikes / chunks.clamp_min(1) + 1e-3)], dim=1)


def with_registered(
    identity: Tensor, unit_keys: Sequence[str], row_sessions: Sequence[str], tables: Mapping[str, Mapping[str, Tensor]]
) -> Tensor:
    """``identity`` [N, D] with the rows of sessions in ``tables`` (session -> unit key -> [D]) replaced.

    Raises:
        KeyError: a row's unit is not among its session's registered units.
    """
    rows = [i for i, session in enumerate(row_sessions) if session in tables]
    if not rows:
        return identity
    missing = [unit_keys[i] for i in rows if unit_keys[i] not in tables[row_sessions[i]]]
    if missing:
        raise KeyError(f"units {missing[:5]} are not among their session's calibrated units; call "
                       "model.calibrate(recording) with the recording the windows come from")  # fmt: skip
    registered = torch.stack([tables[row_sessions[i]][unit_keys[i]] for i in rows])  # [n, D]
    return identity.index_put((torch.tensor(rows, device=identity.device),), registered)


def calibration_window_counts(
    recording: Any, *, trials: Sequence[int] | None, starts: Sequence[float] | None, n_windows: int, bin_size: float,
    window: float,
) -> Tensor:
    """Unlabeled calibration counts float32 [U, R, T] of windows ``[t, t + window)`` (spikes only).

    Args:
        recording: a :class:`~spikefm.data.recording.Recording`.
        trials: trial indices whose starts begin the windows; default the first ``n_windows`` trials
            of the train split (of all trials when they have no ``split`` column), so a default
            calibration never reads validation or test trials.
        starts: window starts in seconds instead; for a recording without trials the default is
            ``n_windows`` back-to-back windows from its start.
        bin_size, window: seconds; T = ``ceil(window / bin_size)`` bins.
    """
    n_bins = int(np.ceil(window / bin_size - 1e-9))
    starts = calibration_starts(recording, trials=trials, starts=starts, n_windows=n_windows, window=window)
    counts = np.stack([recording.bin(bin_size, t, t + window)[:n_bins] for t in starts])  # [R, T, U]
    return torch.as_tensor(counts.transpose(2, 0, 1), dtype=torch.float32)


def calibration_starts(
    recording: Any, *, trials: Sequence[int] | None, starts: Sequence[float] | None, n_windows: int, window: float
) -> np.ndarray:
    """The calibration windows' starts (s) that :func:`calibration_window_counts` reads."""
    if starts is not None:
        return np.asarray(starts, dtype=np.float64)
    if recording.trials is not None and len(recording.trials):
        index = trials if trials is not None else train_trial_rows(recording.trials)[:n_windows]
        if len(index) == 0:
            raise ValueError(f"{recording.session}: no train-split trial to calibrate on; name trials or starts")
        return np.asarray(recording.trials.start[np.asarray(index, dtype=np.int64)], dtype=np.float64)
    return recording.start + np.arange(n_windows) * window


def train_trial_rows(trials: Any) -> np.ndarray:
    """Rows of a trials table in its ``train`` split (every row when it has no split column)."""
    rows = np.arange(len(trials))
    if "split" in trials.columns:
        rows = rows[np.asarray(trials.columns["split"]).astype(str) == "train"]
    return rows
