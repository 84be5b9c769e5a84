"""Read FALCON benchmark files (M1, M2, H1 layouts) into a :class:`Recording`, and bin them as FALCON does.

FALCON (Karpowicz et al. 2024) ships NWB files per session and role: ``held-in`` sessions to train on,
``held-out`` sessions to adapt to with a little calibration data, and ``calib`` / ``minival`` / ``eval``
parts of each (``sub-MonkeyL-held-out-calib_ses-20121004_behavior+ecephys.nwb``). What each layout holds,
as ``falcon_challenge.dataloaders.load_nwb`` reads it:

- **M1** (monkey finger, EMG): ``acquisition/preprocessed_emg`` (one series per muscle, timestamps = 20 ms
  bin *ends*), ``acquisition/eval_mask``, ``trials``.
- **M2** (monkey finger velocity): ``acquisition/finger_vel`` (one series per finger dimension, timestamps =
  bin *starts*), ``acquisition/eval_mask``, ``trials``.
- **H1** (human 7-D arm kinematics): ``acquisition/OpenLoopKinematicsVelocity`` [T, 7] on the grid
  ``OpenLoopKinematics.offset + i * OpenLoopKinematics.rate`` (bin ends; the files store the 20 ms period
  under ``rate``), ``acquisition/eval_mask``, ``acquisition/TrialNum`` (trials are its runs).

The Recording keeps the sorted spikes and units from ``units`` (through :func:`spikefm.data.nwb.read_nwb`),
the decoding target as one behaviour series (``emg``, ``finger_vel`` or ``kin_vel``, at the file's
timestamps), ``eval_mask`` as a 0/1 behaviour series on the same timestamps, and FALCON's facts in
``metadata["falcon"]`` (task, target key, bin size, whether timestamps are bin starts or ends, role, part).

>>> rec = read_falcon("sub-MonkeyL-held-in-calib_ses-20120924_behavior+ecephys.nwb")  # doctest: +SKIP
>>> counts, target, mask, trial_change = falcon_arrays(rec)  # doctest: +SKIP
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

import h5py
import numpy as np

from spikefm.data.nwb import _open_hdf5, read_nwb
from spikefm.data.recording import DataError, Intervals, Recording, TimeSeries

__all__ = ["FALCON_BIN_SIZE", "TARGET_KEYS", "read_falcon", "falcon_task", "falcon_arrays", "falcon_bin_counts",
           "FalconArrays"]

FALCON_BIN_SIZE = 0.02
#: task -> the behaviour key the decoding target is stored under.
TARGET_KEYS = {"m1": "emg", "m2": "finger_vel", "h1": "kin_vel"}
_MARKERS = {"m1": "acquisition/preprocessed_emg", "m2": "acquisition/finger_vel",
            "h1": "acquisition/OpenLoopKinematicsVelocity"}


def falcon_task(handle: h5py.File) -> str | None:
    """``"m1"``, ``"m2"`` or ``"h1"`` from a file's acquisition groups; None for other files."""
    for task, marker in _MARKERS.items():
        if marker in handle:
            return task
    return None


def _field(handle: h5py.File, path: str, source: Path) -> h5py.Dataset | h5py.Group:
    if path not in handle:
        raise DataError(f"{source}: field '{path}' is missing; FALCON files of this layout carry it")
    return handle[path]


def _container(handle: h5py.File, name: str, source: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """A BehavioralTimeSeries of one series per column: (timestamps [T], values [T, C], column names)."""
    group = _field(handle, f"acquisition/{name}", source)
    names = sorted(k for k, v in group.items() if isinstance(v, h5py.Group) and "data" in v)
    if not names:
        raise DataError(f"{source}: field 'acquisition/{name}' holds no time series")
    columns, stamps = [], None
    for key in names:
        series = group[key]
        if "timestamps" not in series:
            raise DataError(f"{source}: field 'acquisition/{name}/{key}/timestamps' is missing")
        t = series["timestamps"][()].astype(np.float64)
        values = series["data"][()].astype(np.float64).reshape(-1)
        if values.size != t.size or (stamps is not None and not np.array_equal(t, stamps)):
            raise DataError(f"{source}: series 'acquisition/{name}/{key}' does not share its siblings' timestamps")
        stamps = t
        columns.append(values)
    return stamps, np.stack(columns, axis=1), tuple(names)


def _h1_target(handle: h5py.File, source: Path) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    values = _field(handle, "acquisition/OpenLoopKinematicsVelocity/data", source)[()].astype(np.float64)
    kin = _field(handle, "acquisition/OpenLoopKinematics", source)
    data = _field(handle, "acquisition/OpenLoopKinematics/data", source)
    offset = float(data.attrs.get("offset", 0.0))
    step = float(kin["starting_time"].attrs["rate"]) if "starting_time" in kin else FALCON_BIN_SIZE
    return offset + np.arange(values.shape[0]) * step, values, ()


def _mask(handle: h5py.File, source: Path, n: int) -> np.ndarray:
    mask = _field(handle, "acquisition/eval_mask/data", source)[()].astype(bool).reshape(-1)
    if mask.size != n:
        raise DataError(f"{source}: field 'acquisition/eval_mask' has {mask.size} samples for {n} bins")
    return mask


def _h1_trials(handle: h5py.File, source: Path, bin_ends: np.ndarray) -> Intervals:
    trial = _field(handle, "acquisition/TrialNum/data", source)[()].reshape(-1)
    if trial.size != bin_ends.size:
        raise DataError(f"{source}: field 'acquisition/TrialNum' has {trial.size} samples for {bin_ends.size} bins")
    first = np.flatnonzero(np.concatenate([[True], np.diff(trial) != 0]))
    last = np.append(first[1:], trial.size) - 1
    return Intervals(bin_ends[first] - FALCON_BIN_SIZE, bin_ends[last], {"trial_num": trial[first]})


def _file_role(path: Path) -> tuple[str, str, str | None]:
    """(role, part, session) from FALCON's file names; role / part "" when the name does not say."""
    name = path.name.replace("_", "-")  # held-in / held_in
    role = "held_out" if "held-out" in name else "held_in" if "held-in" in name else ""
    part = next((p for p in ("calib", "minival", "eval") if p in name), "")
    match = re.search(r"ses-([A-Za-z0-9.T]+)", path.stem)
    return role, part, match.group(1) if match else None


def read_falcon(path: str | Path, *, session: str | None = None) -> Recording:
    """Read one FALCON NWB file (M1, M2 or H1 layout).

    Args:
        path: the ``.nwb`` file.
        session: session id; default the ``ses-`` part of FALCON's file name, else the file's session id.

    Raises:
        DataError: not a FALCON file, a field missing, or mask / target / trial lengths that disagree.
    """
    path = Path(path)
    with _open_hdf5(path) as handle:
        task = falcon_task(handle)
        if task is None:
            raise DataError(f"{path}: not a FALCON file (none of {sorted(_MARKERS.values())} is present)")
        if task == "h1":
            stamps, values, columns = _h1_target(handle, path)
        else:
            stamps, values, columns = _container(handle, "preprocessed_emg" if task == "m1" else "finger_vel", path)
        mask = _mask(handle, path, stamps.size)
        trials = _h1_trials(handle, path, stamps) if task == "h1" else None
    role, part, file_session = _file_role(path)
    base = read_nwb(path, session=session or file_session)
    starts = task == "m2"
    key = TARGET_KEYS[task]
    try:
        behavior = {key: TimeSeries(stamps, values, columns), "eval_mask": TimeSeries(stamps, mask.astype(np.float64))}
    except DataError as err:
        raise DataError(f"{path}: {err}") from err
    falcon = {"task": task, "target": key, "bin_size": FALCON_BIN_SIZE, "timestamps": "start" if starts else "end",
              "role": role, "part": part}
    lo = float(stamps[0] - (0.0 if starts else FALCON_BIN_SIZE)) if stamps.size else base.start
    hi = float(stamps[-1] + (FALCON_BIN_SIZE if starts else 0.0)) if stamps.size else base.end
    return replace(base, behavior=behavior, trials=trials if trials is not None else base.trials,
                   start=min(lo, base.start), end=max(hi, base.end),
                   metadata={**base.metadata, "format": "falcon", "falcon": falcon})


@dataclass(frozen=True)
class FalconArrays:
    """One FALCON file as its evaluator sees it.

    Attributes:
        counts: uint8-range int64 [T, N] spike counts per 20 ms bin.
        target: float64 [T, D] decoding target.
        eval_mask: bool [T] bins that are scored.
        trial_change: bool [T] True at the first bin of each trial.
        bin_starts: float64 [T] start of each bin (s).
    """

    counts: np.ndarray
    target: np.ndarray
    eval_mask: np.ndarray
    trial_change: np.ndarray
    bin_starts: np.ndarray


def falcon_bin_counts(rec: Recording, bin_ends: np.ndarray, bin_size: float = FALCON_BIN_SIZE) -> np.ndarray:
    """Spike counts per bin exactly as ``falcon_challenge.dataloaders.bin_units`` bins (``np.histogram``).

    Bin ``i`` ends at ``bin_ends[i]`` and starts at the previous end, or ``bin_size`` before its end after a gap
    longer than ``bin_size``; the last bin also counts a spike exactly at its end (``np.histogram``'s closed last bin).
    """
    ends = np.asarray(bin_ends, np.float64)
    gaps = np.diff(ends)
    if np.any(gaps <= 0):
        raise DataError("FALCON bin timestamps must increase")
    lefts = ends - bin_size
    contiguous = ~((gaps > bin_size) & ~np.isclose(gaps, bin_size))
    lefts[1:][contiguous] = ends[:-1][contiguous]
    out = np.zeros((ends.size, rec.n_units), np.int64)
    per_unit = rec.spikes.per_unit(rec.n_units)
    for u, times in enumerate(per_unit):
        lo = np.searchsorted(times, lefts, side="left")
        hi = np.searchsorted(times, ends, side="left")
        if ends.size:
            hi[-1] = np.searchsorted(times, ends[-1], side="right")
        out[:, u] = hi - lo
    return out


def falcon_arrays(rec: Recording) -> FalconArrays:
    """Counts, target, eval mask and trial changes of a FALCON recording, on FALCON's 20 ms bins."""
    info = rec.metadata.get("falcon")
    if not info:
        raise DataError(f"{rec.source or rec.session}: not read by read_falcon (no metadata['falcon'])")
    series = rec.behavior[info["target"]]
    stamps, size = series.timestamps, float(info["bin_size"])
    ends = stamps + size if info["timestamps"] == "start" else stamps
    counts = falcon_bin_counts(rec, ends, size)
    trial_change = np.zeros(stamps.size, bool)
    if rec.trials is not None and len(rec.trials):
        if info["task"] == "h1":
            trial_change[np.searchsorted(ends - size, rec.trials.start[1:] - 1e-9)] = True
        else:
            index = np.searchsorted(stamps, rec.trials.start)
            trial_change[index[index < stamps.size]] = True
    mask = rec.behavior["eval_mask"].values[:, 0] > 0.5
    return FalconArrays(counts, series.values, mask, trial_change, ends - size)
