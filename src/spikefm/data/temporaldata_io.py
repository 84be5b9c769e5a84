"""Read and write temporaldata HDF5 files (what brainsets prepares for torch_brain) as :class:`Recording`.

The file is read and written by the ``temporaldata`` package itself (``pip install spikefm[temporaldata]``;
torch_brain >= 0.2 vendors the same code as ``torch_brain.data``, used when ``temporaldata`` is absent).
brainsets' layout, and what each part becomes:

- ``spikes``: IrregularTimeSeries with ``timestamps`` and ``unit_index`` -> :class:`SpikeTrains` (every spike).
- ``units``: ArrayDict with ``id`` -> :class:`Units` ids; a region from ``brain_region`` / ``location`` /
  ``region`` / ``area``; ``heldout`` when present.
- ``trials``: Interval -> trials, every 1-D column kept; brainsets' ``train_mask`` / ``valid_mask`` /
  ``test_mask`` become a ``split`` column (``train`` / ``val`` / ``test``).
- every other time series (``cursor``, ``hand``, ``finger``...): one behaviour series per data key,
  ``<name>_<key>`` (``cursor_vel``), or ``<name>`` when it holds one key.
- ``session.id``, ``subject.id`` -> session, subject; ``domain`` -> the time domain.

:func:`write_temporaldata` writes the same layout back, so a Recording round-trips.

>>> rec = read_temporaldata("perich_miller_population_2018/c_20131003_center_out_reaching.h5")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import h5py
import numpy as np

from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains, TimeSeries, Units

__all__ = ["read_temporaldata", "write_temporaldata", "is_temporaldata"]

_REGION_KEYS = ("brain_region", "location", "region", "area")
_SPLIT_MASKS = (("train_mask", "train"), ("valid_mask", "val"), ("test_mask", "test"))
_NOT_BEHAVIOR = {"spikes", "units", "trials", "domain", "session", "subject", "device", "brainset"}


def _library() -> ModuleType:
    try:
        import temporaldata

        return temporaldata
    except ImportError:
        try:
            import torch_brain.data as vendored

            return vendored
        except ImportError:
            raise DataError(
                "reading temporaldata / brainsets files needs the temporaldata package: "
                "pip install 'spikefm[temporaldata]'"
            ) from None


def is_temporaldata(handle: h5py.File) -> bool:
    """True for a file temporaldata's ``Data.to_hdf5`` wrote (root attribute ``object`` = ``Data``)."""
    kind = handle.attrs.get("object")
    return (kind.decode() if isinstance(kind, bytes) else kind) == "Data"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return _text(value.reshape(-1)[0]) if value.size else ""
    return str(value)


def _id(data: object, name: str) -> str:
    part = getattr(data, name, None)
    return _text(getattr(part, "id", part if isinstance(part, (str, bytes)) else None))


def _units(data: object, source: str) -> Units:
    units = getattr(data, "units", None)
    if units is None or "id" not in units.keys():
        raise DataError(f"{source}: field 'units/id' is missing; brainsets files name every unit")
    keys = units.keys()
    region = next((np.asarray(getattr(units, k)).astype(str) for k in _REGION_KEYS if k in keys), None)
    heldout = np.asarray(units.heldout, bool) if "heldout" in keys else None
    return Units(ids=np.asarray(units.id).astype(str), region=region, heldout=heldout)


def _spikes(data: object, n_units: int, source: str) -> SpikeTrains:
    spikes = getattr(data, "spikes", None)
    if spikes is None or "unit_index" not in spikes.keys():
        raise DataError(f"{source}: field 'spikes/unit_index' is missing; spikefm needs sorted spikes")
    times = np.asarray(spikes.timestamps, np.float64)
    units = np.asarray(spikes.unit_index)
    if units.size and (units.min() < 0 or units.max() >= n_units):
        raise DataError(f"{source}: field 'spikes/unit_index' points outside the {n_units} units")
    order = np.argsort(times, kind="stable")  # temporaldata keeps them sorted; a hand-made file may not
    try:
        return SpikeTrains(times[order], units[order].astype(np.int64))
    except DataError as err:
        raise DataError(f"{source}: {err}") from err


def _trials(data: object, lib: ModuleType) -> Intervals | None:
    trials = getattr(data, "trials", None)
    if not isinstance(trials, lib.Interval):
        return None
    columns = {}
    for key in trials.keys():
        value = np.asarray(getattr(trials, key))
        if key not in ("start", "end") and value.ndim == 1:
            columns[key] = value.astype(str) if value.dtype.kind in "SO" else value
    if all(mask in columns for mask, _ in _SPLIT_MASKS) and "split" not in columns:
        split = np.full(len(trials), "none", dtype=object)
        for mask, name in _SPLIT_MASKS:
            split[columns[mask].astype(bool)] = name
        columns["split"] = split.astype(str)
    return Intervals(np.asarray(trials.start, np.float64), np.asarray(trials.end, np.float64), columns)


def _behavior(data: object, lib: ModuleType) -> dict[str, TimeSeries]:
    behavior = {}
    for name in data.keys():
        series = getattr(data, name)
        if name in _NOT_BEHAVIOR or not isinstance(series, (lib.IrregularTimeSeries, lib.RegularTimeSeries)):
            continue
        times = np.asarray(series.timestamps, np.float64)
        keys = [k for k in series.keys() if k != "timestamps" and np.asarray(getattr(series, k)).dtype.kind in "biuf"]
        for key in keys:
            values = np.asarray(getattr(series, key), np.float64)
            if values.ndim in (1, 2) and values.shape[0] == times.size:
                behavior[name if len(keys) == 1 else f"{name}_{key}"] = TimeSeries(times, values)
    return behavior


def read_temporaldata(path: str | Path, *, session: str | None = None) -> Recording:
    """Read a temporaldata / brainsets HDF5 file into a :class:`Recording`.

    Raises:
        DataError: missing file, not a temporaldata file, no units or spikes, or bad unit indices.
    """
    path = Path(path)
    lib = _library()
    if not path.is_file() or not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file; temporaldata files are HDF5")
    with h5py.File(path, "r") as handle:
        if not is_temporaldata(handle):
            raise DataError(f"{path}: not a temporaldata file (root attribute 'object' is not 'Data')")
        try:
            data = lib.Data.from_hdf5(handle, lazy=False)
        except (KeyError, ValueError, AssertionError, TypeError) as err:
            raise DataError(f"{path}: temporaldata cannot read it ({type(err).__name__}: {err})") from err
        source = str(path)
        units = _units(data, source)
        spikes = _spikes(data, len(units), source)
        domain = getattr(data, "domain", None)
        start = float(np.min(domain.start)) if domain is not None and len(domain) else None
        end = float(np.max(domain.end)) if domain is not None and len(domain) else None
        if start is not None and len(spikes):
            start, end = min(start, spikes.times[0]), max(end, float(np.nextafter(spikes.times[-1], np.inf)))
        return Recording(
            spikes=spikes, units=units, session=session or _id(data, "session") or path.stem,
            subject=_id(data, "subject"), behavior=_behavior(data, lib), trials=_trials(data, lib),
            start=start, end=end, source=source,
            metadata={"format": "temporaldata", "brainset": _id(data, "brainset")},
        )


def write_temporaldata(rec: Recording, path: str | Path) -> Path:
    """Write ``rec`` as a temporaldata file in brainsets' layout (readable by temporaldata and torch_brain).

    Behaviour series are written one IrregularTimeSeries each, under their own name with the key ``values``.
    """
    lib = _library()
    path = Path(path)
    domain = lib.Interval(np.array([rec.start]), np.array([rec.end]))
    units = {"id": rec.units.ids.astype("S"), "heldout": rec.units.heldout}
    if rec.units.region is not None:
        units["brain_region"] = rec.units.region.astype("S")
    parts = {
        "session": lib.Data(id=rec.session),
        "subject": lib.Data(id=rec.subject),
        "units": lib.ArrayDict(**units),
        "spikes": lib.IrregularTimeSeries(timestamps=rec.spikes.times, unit_index=rec.spikes.units, domain=domain),
    }
    for name, series in rec.behavior.items():
        parts[name] = lib.IrregularTimeSeries(timestamps=series.timestamps, values=series.values, domain=domain)
    if rec.trials is not None:
        columns = {k: (v.astype("S") if v.dtype.kind == "U" else v) for k, v in rec.trials.columns.items()
                   if v.ndim == 1 and v.dtype != object}
        parts["trials"] = lib.Interval(rec.trials.start, rec.trials.end, **columns)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        lib.Data(domain=domain, **parts).to_hdf5(handle)
    return path
