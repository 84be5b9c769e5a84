"""Read NWB files (Neural Latents Benchmark layout, or any NWB with a units table).

The reader walks the HDF5 layout with h5py directly instead of going through
pynwb: it is faster, needs no namespace resolution, and is not tripped by files
that pynwb's validator rejects for reasons that do not touch the spikes.

What is read:

- ``/units``: ``spike_times`` (ragged via ``spike_times_index``), ``id`` -> unit
  ids, ``heldout`` (NLB) -> :attr:`Units.heldout`, ``quality``, and a region from a
  units ``location``-like column or from the ``electrodes`` the unit points to.
  Units without spikes are kept.
- ``/intervals/trials``: ``start_time``/``stop_time`` and every other column (strings
  decoded, ragged columns as object arrays). A file without ``trials`` but with
  other interval tables gets them merged, with a ``table`` column naming the source.
- behaviour: every numeric TimeSeries under ``/processing/*`` (one level of
  containers deep, as NLB's ``processing/behavior/hand_vel``) and ``/acquisition``,
  keyed by its name. Raw-signal and image series are not behaviour and are skipped
  (listed in ``metadata["skipped_series"]``).

>>> rec = read_nwb("sub-Jenkins_ses-small_desc-test_ecephys.nwb")  # doctest: +SKIP
>>> rec.n_units, rec.n_spikes, len(rec.trials)  # doctest: +SKIP
(107, 32897, 100)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains, TimeSeries, Units

__all__ = ["read_nwb"]

# Series types that are raw signals or images, not behaviour; reading them would be
# slow (30 kHz voltage) and meaningless as a decoding target.
_NOT_BEHAVIOR = {
    "ElectricalSeries",
    "SpikeEventSeries",
    "ImageSeries",
    "ImageMaskSeries",
    "OpticalSeries",
    "TwoPhotonSeries",
    "OnePhotonSeries",
    "RoiResponseSeries",
    "AnnotationSeries",
    "IndexSeries",
}
# Units-table columns that name a brain region directly, in order of preference.
_REGION_COLUMNS = ("location", "brain_area", "brain_region", "region")


def _open_hdf5(path: Path, **options: Any) -> h5py.File:
    """Open ``path`` read-only (use as a context manager); failures become DataErrors naming the file.

    ``options`` go to ``h5py.File`` (e.g. ``rdcc_nbytes``, the chunk-cache size).
    """
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise DataError(
            f"{path}: not an HDF5 file; spikefm reads NWB 2.x (HDF5) files and spikefm stores "
            "written by spikefm.data.store.write_recording"
        )
    try:
        return h5py.File(path, "r", **options)
    except OSError as err:
        raise DataError(f"{path}: cannot open as HDF5 ({err})") from err


def _text(node: h5py.Dataset | None, default: str = "") -> str:
    """A scalar NWB string dataset as str."""
    if node is None:
        return default
    value = node[()]
    if isinstance(value, np.ndarray):
        value = value.reshape(-1)[0] if value.size else default
    return value.decode() if isinstance(value, bytes) else str(value)


def _text_attr(value: object) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


def _column(group: h5py.Group, name: str) -> np.ndarray:
    """One DynamicTable column, strings decoded to str, ragged columns as object arrays."""
    node = group[name]
    if h5py.check_string_dtype(node.dtype) is not None:
        data = np.asarray(node.asstr()[()], dtype=str)
    else:
        data = node[()]
    index_name = f"{name}_index"
    if index_name not in group:
        return data
    ends = group[index_name][()].astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    ragged = np.empty(ends.size, dtype=object)
    for row, (lo, hi) in enumerate(zip(starts, ends)):
        ragged[row] = data[lo:hi]
    return ragged


def _table_columns(group: h5py.Group) -> list[str]:
    """Column names of a DynamicTable: ``colnames`` first, then stray VectorData datasets."""
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in group.attrs.get("colnames", [])]
    for name, node in group.items():
        if name in names or name == "id" or name.endswith("_index") or not isinstance(node, h5py.Dataset):
            continue
        if node.attrs.get("neurodata_type") in ("VectorData", b"VectorData"):
            names.append(name)
    return [n for n in names if n in group]


def _readable(node: h5py.Dataset) -> bool:
    """True for plain numeric, bool and string columns; references and compounds are skipped."""
    if h5py.check_string_dtype(node.dtype) is not None:
        return True
    return node.dtype.kind in "biuf?"


# ------------------------------------------------------------------------- units
def _spike_trains(units: h5py.Group, path: Path, ids: np.ndarray) -> SpikeTrains:
    if "spike_times" not in units:
        raise DataError(f"{path}: field 'units/spike_times' is missing; the units table has no spike times")
    times = units["spike_times"][()].astype(np.float64)
    if "spike_times_index" in units:
        ends = units["spike_times_index"][()].astype(np.int64)
    elif ids.size == 1:
        ends = np.array([times.size])
    else:
        raise DataError(f"{path}: field 'units/spike_times_index' is missing for a table of {ids.size} units")
    if ends.size != ids.size or np.any(np.diff(ends) < 0) or (ends.size and ends[-1] != times.size):
        raise DataError(
            f"{path}: field 'units/spike_times_index' is inconsistent: {ends.size} end offsets for {ids.size} "
            f"units and {times.size} spike times (offsets must be non-decreasing and end at the last spike)"
        )
    if times.size and not np.all(np.isfinite(times)):
        bad = int(np.flatnonzero(~np.isfinite(times))[0])
        unit = ids[int(np.searchsorted(ends, bad, side="right"))]
        raise DataError(
            f"{path}: field 'units/spike_times' has a NaN/inf spike time at row {bad} (unit id {unit}); "
            "remove or fix that spike in the source file"
        )
    return SpikeTrains.from_unit_times(np.split(times, ends[:-1]) if ends.size else [])


def _electrode_rows(units: h5py.Group, n_units: int) -> tuple[h5py.Group, np.ndarray] | None:
    """The electrodes table and, per unit, the row of its first electrode (-1 if none)."""
    if "electrodes" not in units:
        return None
    node = units["electrodes"]
    table_ref = node.attrs.get("table")
    if not isinstance(table_ref, h5py.Reference):
        return None
    table = units.file[table_ref]
    rows = node[()].astype(np.int64)
    if "electrodes_index" not in units:
        return (table, rows) if rows.size == n_units else None
    # Ragged: a unit may span several electrodes; its first one names its region.
    ends = units["electrodes_index"][()].astype(np.int64)
    starts = np.concatenate([[0], ends[:-1]])
    first = np.full(ends.size, -1, np.int64)
    has = ends > starts
    first[has] = rows[starts[has]]
    return (table, first) if first.size == n_units else None


def _units_table(units: h5py.Group, ids: np.ndarray) -> Units:
    region = position = quality = heldout = None
    for name in _REGION_COLUMNS:
        if name in units and h5py.check_string_dtype(units[name].dtype):
            region = _column(units, name)
            break
    electrodes = _electrode_rows(units, ids.size)
    if electrodes is not None:
        table, first = electrodes
        has = first >= 0
        if region is None and "location" in table:
            locations = _column(table, "location")
            region = np.where(has, locations[np.maximum(first, 0)], "")
        if all(axis in table for axis in "xyz"):
            xyz = np.stack([table[axis][()].astype(np.float64) for axis in "xyz"], axis=1)[np.maximum(first, 0)]
            xyz[~has] = np.nan
            # NLB stores NaN coordinates; a position made only of NaNs carries nothing.
            position = xyz if np.all(np.isfinite(xyz)) else None
    if "quality" in units:
        quality = _column(units, "quality")
    if "heldout" in units:
        heldout = units["heldout"][()].astype(bool)
    return Units(ids=ids, region=region, position=position, quality=quality, heldout=heldout)


# ------------------------------------------------------------------------ trials
def _interval_table(group: h5py.Group) -> tuple[Intervals, list[str]]:
    """One TimeIntervals table, and the names of columns it could not read."""
    columns, skipped = {}, []
    if "id" in group:
        columns["id"] = group["id"][()]
    for name in _table_columns(group):
        if name in ("start_time", "stop_time"):
            continue
        if _readable(group[name]):
            columns[name] = _column(group, name)
        else:
            skipped.append(name)
    start = group["start_time"][()].astype(np.float64)
    end = group["stop_time"][()].astype(np.float64)
    return Intervals(start, end, columns), skipped


def _missing(example: np.ndarray, n_rows: int) -> np.ndarray:
    """Placeholder rows for a column one merged table lacks: "" / empty arrays / NaN."""
    if example.dtype.kind in "US":
        return np.full(n_rows, "")
    if example.dtype == object:
        filler = np.empty(n_rows, dtype=object)
        for row in range(n_rows):
            filler[row] = np.zeros(0)
        return filler
    return np.full(n_rows, np.nan)


def _merge_tables(tables: dict[str, Intervals]) -> Intervals:
    """Stack several interval tables into one, time-ordered, with a ``table`` column."""
    names = list(dict.fromkeys(name for t in tables.values() for name in t.columns))
    columns = {"table": np.concatenate([np.full(len(t), key) for key, t in tables.items()])}
    for name in names:
        example = next(t.columns[name] for t in tables.values() if name in t.columns)
        columns[name] = np.concatenate(
            [t.columns[name] if name in t.columns else _missing(example, len(t)) for t in tables.values()]
        )
    start = np.concatenate([t.start for t in tables.values()])
    end = np.concatenate([t.end for t in tables.values()])
    return Intervals(start, end, columns).select(np.argsort(start, kind="stable"))


def _trials(handle: h5py.File, metadata: dict) -> Intervals | None:
    intervals = handle.get("intervals")
    if intervals is None:
        return None
    tables, skipped = {}, {}
    for name, group in intervals.items():
        if isinstance(group, h5py.Group) and "start_time" in group and "stop_time" in group:
            try:
                tables[name], skipped[name] = _interval_table(group)
            except DataError as err:
                raise DataError(f"field 'intervals/{name}': {err}") from err
    metadata["interval_tables"] = list(tables)
    skipped = {k: v for k, v in skipped.items() if v}
    if skipped:
        metadata["skipped_interval_columns"] = skipped
    if "trials" in tables:
        return tables["trials"]
    tables.pop("invalid_times", None)
    return _merge_tables(tables) if tables else None


# --------------------------------------------------------------------- behaviour
def _series_nodes(handle: h5py.File) -> Iterator[tuple[str, str, h5py.Group]]:
    """(parent name, series name, group) for each TimeSeries-shaped group."""
    roots = [("acquisition", handle.get("acquisition"))]
    roots += [(name, module) for name, module in handle.get("processing", {}).items()]
    for parent, root in roots:
        if not isinstance(root, h5py.Group):
            continue
        for name, node in root.items():
            if not isinstance(node, h5py.Group):
                continue
            if "data" in node:
                yield parent, name, node
                continue
            # Containers (Position, BehavioralTimeSeries...) hold the series one level down.
            for child_name, child in node.items():
                if isinstance(child, h5py.Group) and "data" in child:
                    yield name, child_name, child


def _series(node: h5py.Group, path: Path, resorted: list[str]) -> TimeSeries:
    """One TimeSeries group; names of series that had to be put in time order go to ``resorted``."""
    data = node["data"]
    values = data[()]
    conversion = float(data.attrs.get("conversion", 1.0))
    offset = float(data.attrs.get("offset", 0.0))
    if conversion != 1.0 or offset != 0.0:
        values = values.astype(np.float64) * conversion + offset
    if "timestamps" in node:
        timestamps = node["timestamps"][()].astype(np.float64)
    else:
        start = node["starting_time"]
        rate = float(start.attrs["rate"])
        timestamps = float(start[()]) + np.arange(values.shape[0]) / rate
    if timestamps.size > 1 and np.any(np.diff(timestamps) < 0):
        # Some files (TTL event logs) store samples out of order; NWB asks for ascending
        # times and every slice here binary-searches them, so reorder rather than refuse.
        order = np.argsort(timestamps, kind="stable")
        timestamps, values = timestamps[order], values[order]
        resorted.append(node.name)
    spatial = _text_attr(node.attrs.get("neurodata_type")) == "SpatialSeries"
    columns = ("x", "y", "z")[: values.shape[1]] if spatial and values.ndim == 2 and values.shape[1] <= 3 else ()
    try:
        return TimeSeries(timestamps, values, columns)
    except DataError as err:
        raise DataError(f"{path}: series '{node.name}': {err}") from err


def _behavior(handle: h5py.File, path: Path, metadata: dict) -> dict[str, TimeSeries]:
    behavior, skipped, resorted = {}, [], []
    for parent, name, node in _series_nodes(handle):
        kind = _text_attr(node.attrs.get("neurodata_type"))
        data = node["data"]
        timed = "timestamps" in node or ("starting_time" in node and "rate" in node["starting_time"].attrs)
        if kind in _NOT_BEHAVIOR or not timed or data.dtype.kind not in "biuf?" or data.ndim not in (1, 2):
            skipped.append(node.name)
            continue
        key = name if name not in behavior else f"{parent}.{name}"
        behavior[key] = _series(node, path, resorted)
    if skipped:
        metadata["skipped_series"] = skipped
    if resorted:
        metadata["resorted_series"] = resorted
    return behavior


# -------------------------------------------------------------------------- main
def _neural_extent(spikes: SpikeTrains, trials: Intervals | None) -> tuple[float | None, float | None]:
    """The time domain spanned by spikes and trials.

    Behaviour is left out on purpose: acquisition logs carry stray samples (a TTL
    stamped at -1.5e9 s in the human MTL file) that would stretch the domain by years.
    """
    lo, hi = [], []
    if len(spikes):
        lo.append(spikes.times[0])
        hi.append(spikes.times[-1])
    if trials is not None and len(trials):
        lo.append(trials.start.min())
        hi.append(trials.end.max())
    if not lo:
        return None, None
    return float(min(lo)), float(np.nextafter(max(hi), np.inf))


def read_nwb(path: str | Path, *, session: str | None = None) -> Recording:
    """Read an NWB file into a :class:`Recording`.

    Args:
        path: the ``.nwb`` file (HDF5 backend).
        session: session id; defaults to the file's ``general/session_id``, else the file stem.

    Raises:
        DataError: the file is missing, not HDF5, has no units table, or holds invalid
            values (NaN spike times, inconsistent ragged indices); the message names
            the file and the field.
    """
    path = Path(path)
    with _open_hdf5(path) as handle:
        units = handle.get("units")
        if not isinstance(units, h5py.Group):
            raise DataError(
                f"{path}: field 'units' is missing; spikefm needs an NWB units table with spike_times "
                "(sorted spikes), not only raw voltage"
            )
        ids = units["id"][()].astype(str) if "id" in units else None
        if ids is None:
            raise DataError(f"{path}: field 'units/id' is missing")
        metadata = {
            "format": "nwb",
            "nwb_version": _text_attr(handle.attrs.get("nwb_version")),
            "identifier": _text(handle.get("identifier")),
            "session_description": _text(handle.get("session_description")),
            "session_start_time": _text(handle.get("session_start_time")),
        }
        try:
            spikes = _spike_trains(units, path, ids)
            trials = _trials(handle, metadata)
            start, end = _neural_extent(spikes, trials)
            return Recording(
                spikes=spikes,
                units=_units_table(units, ids),
                session=session or _text(handle.get("general/session_id")) or path.stem,
                subject=_text(handle.get("general/subject/subject_id")),
                behavior=_behavior(handle, path, metadata),
                trials=trials,
                start=start,
                end=end,
                source=str(path),
                metadata=metadata,
            )
        except DataError as err:
            if str(path) in str(err):
                raise
            raise DataError(f"{path}: {err}") from err
