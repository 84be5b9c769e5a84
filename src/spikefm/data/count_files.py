"""Readers for binned count matrices with behaviour, in MATLAB ``.mat`` or numpy ``.npz`` files.

Layout understood (variable names as in the KordingLab/spykesML and Stevenson 2011 files):

* ``spikes`` (or ``counts``): the count matrix, either ``[T, units]`` or ``[units, T]``.
  The bin axis is the one whose length matches ``time`` or the behaviour arrays.
* ``time`` (optional): ``[T]`` bin start times in seconds on a regular grid; it gives both
  ``start`` and ``bin_size`` (the mean step; single steps may jitter by a quarter bin).
  Without it, pass ``bin_size`` (start is 0).
* ``bin_size`` (optional, ``.npz``): bin width in seconds.
* every other numeric array with ``T`` samples along one axis is behaviour, named in
  snake_case (``handVel`` -> ``hand_vel``), stored ``[T, dims]`` at bin centres. An array a few
  samples short or long of ``T`` (within 10%) is left out with a :class:`~spikefm.data.checks.DataWarning`.

>>> rec = read_count_file("m1_stevenson_2011.mat")  # doctest: +SKIP
>>> rec.bin_size, rec.n_units, list(rec.behavior)  # doctest: +SKIP
(0.05, 171, ['hand_vel', 'hand_pos'])
"""

from __future__ import annotations

import re
import warnings
import zipfile
from pathlib import Path

import numpy as np

from spikefm.data.binned import from_binned
from spikefm.data.checks import DataWarning
from spikefm.data.matlab import mat_version, read_mat
from spikefm.data.recording import DataError, Recording

__all__ = ["read_count_file", "read_count_arrays"]

_COUNT_KEYS = ("spikes", "counts")
_GRID_TOLERANCE = 0.25  # bin starts may jitter (rounded clocks) by this fraction of a bin, no more
_NEAR_MISS = 0.1  # an unused array within 10% of the bin count is behaviour of the wrong length: warn


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _counts_key(arrays: dict[str, np.ndarray], path: Path) -> str:
    for key in _COUNT_KEYS:
        if key in arrays and np.asarray(arrays[key]).ndim == 2:
            return key
    raise DataError(
        f"{path}: field 'spikes' is missing; a binned count file needs a 2-D 'spikes' or 'counts' "
        f"array, found {sorted(arrays)}"
    )


def _n_bins(arrays: dict[str, np.ndarray], key: str, path: Path) -> int:
    """The bin count T: from ``time`` if present, else the axis of the counts other arrays share."""
    if "time" in arrays:
        return int(np.asarray(arrays["time"]).size)
    shape = np.asarray(arrays[key]).shape
    lengths = {n for name, a in arrays.items() if name not in (key, "bin_size") for n in np.asarray(a).shape}
    shared = [n for n in shape if n in lengths]
    return shared[0] if shared else shape[0]


def _orient(counts: np.ndarray, n_bins: int, path: Path, key: str) -> np.ndarray:
    if counts.shape[0] == n_bins:
        return counts
    if counts.shape[1] == n_bins:
        return counts.T
    raise DataError(f"{path}: field '{key}' has shape {counts.shape}, neither axis has the {n_bins} bins of 'time'")


def _grid(arrays: dict[str, np.ndarray], bin_size: float | None, path: Path) -> tuple[float, float]:
    """(start, bin_size) from the ``time`` vector, checking it is a regular grid."""
    if "time" not in arrays:
        given = arrays.get("bin_size", bin_size)
        if given is None:
            raise DataError(
                f"{path}: field 'time' is missing and no bin width was given; pass bin_size= "
                "(or `spikefm inspect --bin-size`) with the width the data's source states"
            )
        return 0.0, float(np.asarray(given).ravel()[0])
    time = np.asarray(arrays["time"], np.float64).ravel()
    if time.size < 2 or not np.all(np.isfinite(time)):
        raise DataError(f"{path}: field 'time' needs at least 2 finite bin times")
    # Mean step over the whole span (jitter of single steps cancels), rounded to 1 ns so that
    # float noise in a saved clock does not widen the bins.
    step = round(float(time[-1] - time[0]) / (time.size - 1), 9) if bin_size is None else float(bin_size)
    drift = np.abs(time - (time[0] + np.arange(time.size) * step)).max()
    if not step > 0 or drift > _GRID_TOLERANCE * step:
        raise DataError(
            f"{path}: field 'time' is not a regular grid of {step:g} s bins (off by up to {drift:g} s); "
            "split the file at its gaps and read each part with from_binned"
        )
    return float(time[0]), step


def _behaviour(arrays: dict[str, np.ndarray], skip: set[str], n_bins: int, path: Path) -> dict[str, np.ndarray]:
    behaviour = {}
    for name, values in arrays.items():
        values = np.asarray(values)
        if name in skip or values.dtype.kind not in "biuf":
            continue
        if n_bins not in values.shape[:2]:
            _warn_if_near_miss(name, values, n_bins, path)
            continue
        if values.ndim == 2 and values.shape[0] != n_bins:
            values = values.T  # MATLAB style [dims, T]
        behaviour[_snake(name)] = values.astype(np.float64)
    return behaviour


def _warn_if_near_miss(name: str, values: np.ndarray, n_bins: int, path: Path) -> None:
    """A 1-D/2-D array a few samples off the bin count is behaviour with a length error, not metadata."""
    longest = max(values.shape) if values.ndim in (1, 2) else 0
    if longest > 1 and abs(longest - n_bins) <= _NEAR_MISS * n_bins:
        warnings.warn(
            f"{path}: field '{name}' (shape {values.shape}) has {longest} samples but the counts have {n_bins} bins; "
            f"it is left out. Behaviour needs one sample per bin: trim or pad it to {n_bins}",
            DataWarning,
            stacklevel=3,
        )


def read_count_arrays(
    arrays: dict[str, np.ndarray], path: str | Path, *, bin_size: float | None = None, session: str | None = None
) -> Recording:
    """A binned :class:`Recording` from a dict of arrays laid out as in the module docstring."""
    path = Path(path)
    key = _counts_key(arrays, path)
    n_bins = _n_bins(arrays, key, path)
    counts = _orient(np.asarray(arrays[key]), n_bins, path, key)
    start, step = _grid(arrays, bin_size, path)
    behaviour = _behaviour(arrays, {key, "time", "bin_size"}, n_bins, path)
    return from_binned(
        counts,
        step,
        behaviour,
        start=start,
        session=session or path.stem,
        source=str(path),
        metadata={
            "format": "binned-counts", "counts_field": key, "bin_size_from": "time" if "time" in arrays else "given"
        },
    )


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise DataError(f"{path}: cannot read as a numpy .npz archive ({err})") from err


def read_count_file(path: str | Path, *, bin_size: float | None = None, session: str | None = None) -> Recording:
    """Read a ``.mat`` (v5 or v7.3) or ``.npz`` binned count file into a binned :class:`Recording`.

    Args:
        path: the file.
        bin_size: bin width in seconds; required when the file has neither ``time`` nor ``bin_size``.
        session: session id; defaults to the file stem.

    Raises:
        DataError: missing file, unknown format, missing ``spikes``, irregular ``time``, bad counts.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    arrays = read_mat(path) if mat_version(path) else _read_npz(path)
    return read_count_arrays(arrays, path, bin_size=bin_size, session=session)
