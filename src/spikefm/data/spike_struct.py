"""MATLAB structs of per-unit spike times (the Frank-lab ``spikes{day}{epoch}{tetrode}{cell}`` layout).

The hippocampus sessions in ``shared/data/hippocampus`` store one variable, ``spikes``: nested
cell arrays ending in structs with a field ``time`` (a column of spike times in seconds).
The reader walks the nesting in order, whatever its depth, and names each unit by its
1-based path in it, leaving out levels where every unit has index 1, e.g. ``"t10c15"`` for tetrode 10, cell 15.
Cells whose struct holds no spike at all are placeholders for units not seen in this epoch;
they are dropped and counted in ``metadata["empty_units_dropped"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikefm.data.matlab import read_mat
from spikefm.data.recording import DataError, SpikeTrains, Units

__all__ = ["read_spike_struct", "is_spike_struct"]

_LEVEL_NAMES = ("t", "c")  # the last two varying levels are tetrode and cell


def is_spike_struct(variables: dict[str, np.ndarray]) -> bool:
    """Whether a .mat file's variables hold a ``spikes`` cell/struct array (not a count matrix)."""
    spikes = variables.get("spikes")
    return isinstance(spikes, np.ndarray) and (spikes.dtype == object or spikes.dtype.names is not None)


def _walk(node: np.ndarray, path: tuple[int, ...], out: list[tuple[tuple[int, ...], np.ndarray]], source: str) -> None:
    """Collect (index path, struct) for every struct leaf under ``node``."""
    if not isinstance(node, np.ndarray) or node.size == 0:
        return
    if node.dtype.names is not None:
        for i, item in enumerate(node.flat):
            out.append(((*path, i), item))
        return
    if node.dtype != object:
        return  # an empty placeholder ([] in MATLAB) or stray numbers: no unit here
    for i, child in enumerate(node.flat):
        _walk(child, (*path, i), out, source)


def _varying(paths: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """Drop the nesting levels at which every unit has index 0 (day, epoch, 1x1 structs)."""
    depth = min(len(p) for p in paths)
    keep = [d for d in range(depth) if any(p[d] for p in paths)] or [depth - 1]
    return [tuple(p[d] for d in keep) + p[depth:] for p in paths]


def _unit_id(path: tuple[int, ...]) -> str:
    names = _LEVEL_NAMES[-len(path) :] if len(path) <= len(_LEVEL_NAMES) else ()
    if names:
        return "".join(f"{n}{i + 1}" for n, i in zip(names, path))
    return "u" + ".".join(str(i + 1) for i in path)


def _times(struct: np.void, path: tuple[int, ...], source: str) -> np.ndarray:
    if "time" not in (struct.dtype.names or ()):
        raise DataError(f"{source}: field 'spikes{{{_unit_id(path)}}}.time' is missing; found {struct.dtype.names}")
    times = np.asarray(struct["time"], np.float64).ravel()
    if times.size and not np.all(np.isfinite(times)):
        raise DataError(f"{source}: field 'spikes{{{_unit_id(path)}}}.time' has NaN or inf spike times")
    return np.sort(times, kind="stable")


def read_spike_struct(path: str | Path) -> tuple[SpikeTrains, Units, dict]:
    """Spike trains, units table and metadata from a MATLAB struct of unit spike times.

    Raises:
        DataError: the file is not a MATLAB file, has no ``spikes`` struct, a unit lacks ``time``,
            or a time is not finite; the message names the file and the unit.
    """
    path = Path(path)
    variables = read_mat(path)
    if not is_spike_struct(variables):
        raise DataError(f"{path}: field 'spikes' is missing or is not a MATLAB struct/cell array of units")
    leaves: list[tuple[tuple[int, ...], np.ndarray]] = []
    _walk(variables["spikes"], (), leaves, str(path))
    if not leaves:
        raise DataError(f"{path}: field 'spikes' holds no unit struct")
    per_unit, ids, dropped = [], [], 0
    for index, (_, struct) in zip(_varying([p for p, _ in leaves]), leaves):
        times = _times(struct, index, str(path))
        if times.size == 0:
            dropped += 1
            continue
        per_unit.append(times)
        ids.append(_unit_id(index))
    if not per_unit:
        raise DataError(f"{path}: field 'spikes' holds no unit with any spike time")
    metadata = {"format": "matlab-spike-struct", "empty_units_dropped": dropped}
    return SpikeTrains.from_unit_times(per_unit), Units(ids=np.array(ids)), metadata
