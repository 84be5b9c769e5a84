"""spikefm's own HDF5 store: one file per recording, read eagerly or window by window.

Layout (format version 1)::

    /                      attrs: spikefm_format, format_version, session, subject, source,
                                  start, end, origin, bin_size (absent if None), metadata (JSON)
    /spikes/times          float64 [n]   sorted spike times (contiguous by default; chunked if compressed)
    /spikes/units          int32   [n]   unit index per spike
    /spikes/index_times    float64 [m]   time of every 4096th spike ...
    /spikes/index_rows     int64   [m]   ... and the first row at or after that time
    /units/{ids,heldout,region?,position?,quality?}
    /behavior/<name>/{timestamps,values,index_times,index_rows}   attrs: columns (JSON)
    /trials/{start,end}, /trials/columns/<name>                  (absent if no trials)

Every array carries a ``numpy_dtype`` attribute so strings come back with their exact
numpy dtype. Ragged (object) columns are groups holding ``data`` and ``ends``.

Uncompressed long arrays are stored contiguously (the default) and read through a memory
map: a window is two binary searches and a copy of its k rows, with no HDF5 call. Older or
compressed stores (chunked datasets) are read through h5py with a coarse index, in the same
format version: a spikefm that predates the memory map reads the contiguous layout too.

For chunked stores (read by :mod:`spikefm.data.time_index`) the coarse index makes a window
read O(log n + k): a binary search over the small index in memory finds the two buckets (at
most 4096 spikes each) that hold the window's edges; reading those rows and binary-searching
them gives the exact edges, and the k spikes between are read once (in the same read when the
edges are close). Buckets are cut every 4096 spikes rather than every second so that bursts
cannot make one large.

>>> write_recording(rec, "session.h5")  # doctest: +SKIP
>>> lazy = open_recording("session.h5")  # doctest: +SKIP
>>> lazy.slice(10.0, 11.0).n_spikes  # doctest: +SKIP
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import socket
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from spikefm.data.checks import check_spike_span
from spikefm.data.nwb import _open_hdf5, read_nwb
from spikefm.data.time_index import INDEX_ROWS as _INDEX_ROWS
from spikefm.data.time_index import TimeIndexed as _TimeIndexed
from spikefm.data.recording import (
    DataError,
    Intervals,
    Recording,
    SpikeTrains,
    TimeSeries,
    Units,
    Window,
    trusted,
)

__all__ = ["FORMAT", "FORMAT_VERSION", "write_recording", "read_recording", "open_recording", "LazyRecording", "load"]

FORMAT = "spikefm.recording"
FORMAT_VERSION = 1
_CHUNK_ROWS = 8192  # 64 KiB of float64: small chunks keep lzf decompression per window cheap (measured)


# ------------------------------------------------------------------ array codec
def _is_text(values: np.ndarray) -> bool:
    if values.dtype.kind == "U":
        return True
    return values.dtype == object and all(isinstance(v, str) for v in values.flat)


def _write_array(group: h5py.Group, name: str, values: Any, compression: str | None) -> None:
    """Write one array so that :func:`_read_array` returns it with the same dtype and values."""
    values = np.asarray(values)
    if values.dtype == object and not _is_text(values):
        _write_ragged(group, name, values, compression)
        return
    if _is_text(values):
        node = group.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
    elif values.dtype.kind in "biufc?S":
        chunked = values.ndim >= 1 and values.shape[0] > _CHUNK_ROWS
        node = group.create_dataset(
            name,
            data=values,
            chunks=(_CHUNK_ROWS, *values.shape[1:]) if chunked else None,
            compression=compression if chunked else None,
        )
    else:
        raise DataError(f"cannot store column '{name}' of dtype {values.dtype}; use numbers, bools or strings")
    node.attrs["numpy_dtype"] = values.dtype.str


def _write_ragged(group: h5py.Group, name: str, values: np.ndarray, compression: str | None) -> None:
    rows = [np.asarray(v) for v in values]
    if any(r.ndim != 1 for r in rows):
        raise DataError(f"cannot store column '{name}': object entries must be strings or 1-D arrays")
    sub = group.create_group(name)
    sub.attrs["ragged"] = True
    _write_array(sub, "data", np.concatenate(rows) if rows else np.zeros(0), compression)
    _write_array(sub, "ends", np.cumsum([r.size for r in rows], dtype=np.int64), None)


def _read_array(node: h5py.Dataset | h5py.Group) -> np.ndarray:
    if isinstance(node, h5py.Group):
        data, ends = _read_array(node["data"]), node["ends"][()]
        ragged = np.empty(ends.size, dtype=object)
        for row, piece in enumerate(np.split(data, ends[:-1]) if ends.size else []):
            ragged[row] = piece  # one by one: numpy would stack equal-length rows into 2-D
        return ragged
    dtype = np.dtype(node.attrs["numpy_dtype"])
    if dtype.kind in "UO":
        return np.asarray(node.asstr()[()], dtype=object).astype(dtype)
    return node[()].astype(dtype, copy=False)


def _write_rows(group: h5py.Group, name: str, values: np.ndarray, compression: str | None) -> None:
    """A long row-major dataset: contiguous when uncompressed (readers memory-map it), else
    chunked along rows so a window decompresses few chunks."""
    chunks = (min(_CHUNK_ROWS, values.shape[0]), *values.shape[1:]) if values.shape[0] and compression else None
    node = group.create_dataset(name, data=values, chunks=chunks, compression=compression if chunks else None)
    node.attrs["numpy_dtype"] = values.dtype.str


def _write_time_index(group: h5py.Group, times: np.ndarray) -> None:
    """Every ``_INDEX_ROWS``-th time and the first row holding a time >= it."""
    index_times = times[::_INDEX_ROWS]
    group.create_dataset("index_times", data=index_times)
    group.create_dataset("index_rows", data=np.searchsorted(times, index_times, side="left").astype(np.int64))


# ------------------------------------------------------------------------ write
def _check_name(name: str, what: str) -> str:
    if not name or "/" in name or name == ".":
        raise DataError(f"cannot store {what} named {name!r}: HDF5 names must be non-empty and contain no '/'")
    return name


def _metadata_json(rec: Recording) -> str:
    try:
        return json.dumps(rec.metadata)
    except (TypeError, ValueError) as err:
        raise DataError(
            f"{rec.source or rec.session}: field 'metadata' is not JSON-serialisable ({err}); "
            "keep only str, numbers, bools, None, lists and dicts with str keys"
        ) from err


def _write_units(handle: h5py.File, units: Units) -> None:
    group = handle.create_group("units", track_order=True)
    for name in ("ids", "heldout", "region", "position", "quality"):
        if getattr(units, name) is not None:
            _write_array(group, name, getattr(units, name), None)


def _write_behavior(handle: h5py.File, behavior: dict[str, TimeSeries], compression: str | None) -> None:
    root = handle.create_group("behavior", track_order=True)
    for name, series in behavior.items():
        group = root.create_group(_check_name(name, "a behaviour series"))
        group.attrs["columns"] = json.dumps(list(series.columns))
        _write_rows(group, "timestamps", series.timestamps, compression)
        _write_rows(group, "values", series.values, compression)
        _write_time_index(group, series.timestamps)


def _write_trials(handle: h5py.File, trials: Intervals, compression: str | None) -> None:
    group = handle.create_group("trials")
    _write_array(group, "start", trials.start, None)
    _write_array(group, "end", trials.end, None)
    columns = group.create_group("columns", track_order=True)
    for name, values in trials.columns.items():
        _write_array(columns, _check_name(name, "a trial column"), values, compression)


def _write_all(handle: h5py.File, rec: Recording, compression: str | None) -> None:
    attrs = handle.attrs
    attrs.update(spikefm_format=FORMAT, format_version=FORMAT_VERSION, session=rec.session, subject=rec.subject)
    attrs.update(source=rec.source, start=rec.start, end=rec.end, origin=rec.origin, metadata=_metadata_json(rec))
    if rec.bin_size is not None:
        attrs["bin_size"] = float(rec.bin_size)
    spikes = handle.create_group("spikes")
    _write_rows(spikes, "times", rec.spikes.times, compression)
    _write_rows(spikes, "units", rec.spikes.units.astype(np.int32), compression)
    _write_time_index(spikes, rec.spikes.times)
    _write_units(handle, rec.units)
    _write_behavior(handle, rec.behavior, compression)
    if rec.trials is not None:
        _write_trials(handle, rec.trials, compression)


def write_recording(rec: Recording, path: str | Path, *, compression: str | None = None) -> Path:
    """Write ``rec`` to a spikefm store at ``path`` (replaced atomically if it exists).

    The store is written to a hidden temporary file beside ``path`` and renamed, so a crash never
    leaves a half-written store. The file gets the usual permissions (``0o666`` less the umask). A
    failed write removes its temporary file; one left by a writer that was killed outright
    (SIGKILL) is removed by the next write of the same ``path`` on this host.

    Args:
        rec: the recording; ``metadata`` must be JSON-serialisable.
        path: destination file (conventionally ``.h5``).
        compression: None (default) stores the long arrays (spikes, behaviour samples) contiguous
            and uncompressed, so :class:`LazyRecording` memory-maps them and a window read makes no
            HDF5 call; ``"lzf"`` or ``"gzip"`` stores them chunked and compressed (smaller: ~20% on
            spike times and unit indices, which compress poorly; slower windows: every read goes
            through HDF5 and decompresses whole chunks).

    Returns:
        The path written.
    """
    path = Path(path)
    if rec.n_units >= np.iinfo(np.int32).max:
        raise DataError(f"{rec.source or rec.session}: {rec.n_units} units exceed the int32 unit index")
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(path)
    tmp = path.with_name(f".{path.name}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with h5py.File(tmp, "x") as handle:  # created by HDF5 with mode 0o666 & ~umask (mkstemp would be 0o600)
            _write_all(handle, rec, compression)
        os.replace(tmp, path)
    except DataError as err:
        raise DataError(f"{path}: {err}") from err
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _remove_stale_tmp(path: Path) -> None:
    """Delete temporary files of earlier writes of ``path`` on this host whose writer process is gone."""
    host = socket.gethostname()
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
        writer = tmp.name[len(path.name) + 2 : -len(".tmp")].rsplit(".", 2)  # host, pid, random token
        if len(writer) == 3 and writer[0] == host and writer[1].isdigit() and not _alive(int(writer[1])):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


# ------------------------------------------------------------------------- read
def _check_store(handle: h5py.File, path: Path) -> None:
    kind = handle.attrs.get("spikefm_format")
    if kind != FORMAT:
        raise DataError(
            f"{path}: not a spikefm store (root attribute 'spikefm_format' is {kind!r}, expected {FORMAT!r}); "
            "write one with spikefm.data.store.write_recording, or read NWB files with spikefm.data.store.load"
        )
    version = int(handle.attrs.get("format_version", -1))
    if version > FORMAT_VERSION or version < 1:
        raise DataError(
            f"{path}: field 'format_version' is {version}, this spikefm reads versions 1..{FORMAT_VERSION}; "
            "upgrade spikefm or rewrite the store"
        )


def _header(handle: h5py.File) -> dict[str, Any]:
    """Everything but spikes and behaviour samples: small, read once."""
    attrs = handle.attrs
    units = {name: _read_array(node) for name, node in handle["units"].items()}
    trials = None
    if "trials" in handle:
        group = handle["trials"]
        columns = {name: _read_array(node) for name, node in group["columns"].items()}
        trials = Intervals(_read_array(group["start"]), _read_array(group["end"]), columns)
    return dict(
        units=Units(**units),
        trials=trials,
        session=str(attrs["session"]),
        subject=str(attrs["subject"]),
        source=str(attrs["source"]),
        start=float(attrs["start"]),
        end=float(attrs["end"]),
        origin=float(attrs["origin"]),
        bin_size=float(attrs["bin_size"]) if "bin_size" in attrs else None,
        metadata=json.loads(attrs["metadata"]),
    )


def _read_series(group: h5py.Group) -> TimeSeries:
    return TimeSeries(group["timestamps"][()], group["values"][()], tuple(json.loads(group.attrs["columns"])))


def read_recording(path: str | Path) -> Recording:
    """Read a whole spikefm store into memory.

    Raises:
        DataError: the file is missing, not HDF5, not a spikefm store, or from a newer format.
    """
    path = Path(path)
    with _open_hdf5(path) as handle:
        _check_store(handle, path)
        spikes = SpikeTrains(handle["spikes/times"][()], handle["spikes/units"][()])
        behavior = {name: _read_series(group) for name, group in handle["behavior"].items()}
        return Recording(spikes=spikes, behavior=behavior, **_header(handle))


def open_recording(path: str | Path, *, check: str = "once") -> "LazyRecording":
    """Open a spikefm store for window-by-window reading (see :class:`LazyRecording`).

    Args:
        path: the store.
        check: ``"once"`` (default) checks every row on the first read and trusts later windows;
            ``"window"`` validates each window as it is read instead.
    """
    return LazyRecording(path, check=check)


# ------------------------------------------------------------------------- lazy
CHECKS = ("once", "window")


def _signature(path: Path) -> tuple[int, int, int]:
    """What identifies one version of a file: inode, size and modification time."""
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


class LazyRecording:
    """A spikefm store kept open, reading only the rows a window needs.

    Units, trials and the coarse time indices are loaded on open; spikes and behaviour
    samples stay on disk (memory-mapped when stored contiguously, the default). The object
    pickles as its path plus that small header and reopens the file on first use in the new
    process (also after a fork, since HDF5 handles must not cross one), so torch DataLoader
    workers can each read from it.

    Validation: the index structure is checked on open. With ``check="once"`` (default) the
    first window read checks every row once (times sorted and finite, unit indices in range,
    the index exact: O(n), in bounded memory) and later windows are built without re-checking,
    also after a reopen or in a worker while the file is unchanged (inode, size, mtime). With
    ``check="window"`` nothing is read in full: every window is validated as it is read, as
    any :class:`Recording` is (for huge stores where one full pass is unwanted).

    Attributes:
        path: the store file.
        session, subject, source, start, end, origin, bin_size, metadata: as in :class:`Recording`.
        units: the units table. trials: the trial table or None.
        n_spikes: total spikes in the store. behavior_names: the behaviour series' names.
    """

    _h5py_options: dict[str, Any] = {}  # passed to h5py.File (subclasses set the chunk cache)

    def __init__(self, path: str | Path, *, check: str = "once") -> None:
        if check not in CHECKS:
            raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
        self.path = Path(path).absolute()  # a worker may run from another directory
        self.check = check
        self._checked: tuple[int, int, int] | None = None  # signature of the file version checked in full
        self._handle: h5py.File | None = None
        self._pid = -1
        self._readers: dict[str, _TimeIndexed] | None = None
        handle = self._file()
        header = _header(handle)
        self.units: Units = header.pop("units")
        self.trials: Intervals | None = header.pop("trials")
        self.session: str = header["session"]
        self.subject: str = header["subject"]
        self.source: str = header["source"]
        self.start: float = header["start"]
        self.end: float = header["end"]
        self.origin: float = header["origin"]
        self.bin_size: float | None = header["bin_size"]
        self.metadata: dict[str, Any] = header["metadata"]
        self.n_spikes: int = int(handle["spikes/times"].shape[0])
        self._columns = {name: tuple(json.loads(g.attrs["columns"])) for name, g in handle["behavior"].items()}
        self.behavior_names: list[str] = list(self._columns)
        self._reader(None)  # builds and checks every time index now, so a damaged store fails on open

    # ---------------------------------------------------------------- file handle
    def _file(self) -> h5py.File:
        """The open handle, (re)opened on first use in this process."""
        if self._handle is None or self._pid != os.getpid():
            handle = _open_hdf5(self.path, **self._h5py_options)
            try:
                _check_store(handle, self.path)
            except DataError:
                handle.close()
                raise
            self._handle, self._pid, self._readers = handle, os.getpid(), None
        return self._handle

    def _reader(self, name: str | None) -> _TimeIndexed:
        """Index reader for the spikes (``None``) or one behaviour series, built once per process."""
        handle = self._file()
        if self._readers is None:
            readers = {"": _TimeIndexed(handle["spikes"], "times", "units", where=f"{self.path}: spikes",
                                        path=self.path)}
            for series in self.behavior_names:
                readers[series] = _TimeIndexed(handle["behavior"][series], "timestamps", "values",
                                               where=f"{self.path}: behaviour '{series}'", path=self.path)
            self._readers = readers
            if self._checked is not None and self._checked == _signature(self.path):
                for reader in readers.values():
                    reader.trusted = True  # this file version passed check_all before
        return self._readers["" if name is None else name]

    def _window_readers(self) -> tuple[dict[str, _TimeIndexed], bool]:
        """The readers, and whether windows may skip validation.

        With ``check="once"`` the first call checks the whole store (every reader's
        :meth:`_TimeIndexed.check_all`) and remembers the file version it checked.
        """
        self._reader(None)
        readers = self._readers
        if self.check == "window":
            return readers, False
        if not readers[""].trusted:
            signature = _signature(self.path)
            readers[""].check_all(self.n_units)
            for name in self.behavior_names:
                readers[name].check_all(None)
            self._checked = signature
        return readers, True

    def close(self) -> None:
        """Close the file; a later read reopens it."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.close()
        self._handle, self._readers = None, None

    def __enter__(self) -> "LazyRecording":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.update(_handle=None, _pid=-1, _readers=None)
        return state

    # ---------------------------------------------------------------- properties
    @property
    def n_units(self) -> int:
        return len(self.units)

    @property
    def duration(self) -> float:
        return self.end - self.start

    def unit_keys(self) -> list[str]:
        """Globally unique ``"session/unit"`` keys, as :meth:`Recording.unit_keys`."""
        return [f"{self.session}/{uid}" for uid in self.units.ids]

    # ---------------------------------------------------------------- reading
    def slice(self, t0: float, t1: float, *, relative: bool = False) -> Recording:
        """The part of the store in ``[t0, t1)``; equals ``read_recording(path).slice(t0, t1, relative=...)``.

        Reads O(log n + k) rows: the window's k spikes plus at most two index buckets
        (``index_rows`` spikes each), and likewise for each behaviour series.
        """
        t0, t1 = float(t0), float(t1)
        if not (np.isfinite(t0) and np.isfinite(t1)) or t1 <= t0:
            raise DataError(f"{self.source or self.session}: window must have t1 > t0, got [{t0}, {t1})")
        shift = t0 if relative else 0.0
        readers, trust = self._window_readers()
        times, units = readers[""].read(t0, t1)
        times = np.subtract(times, shift, dtype=np.float64)  # a copy (the rows may be a view of the file)
        units = units.astype(np.int64) if trust else np.array(units)  # a copy; SpikeTrains checks the dtype
        behavior = {}
        for name in self.behavior_names:
            stamps, values = readers[name].read(t0, t1)
            stamps, values = np.subtract(stamps, shift, dtype=np.float64), np.array(values)
            behavior[name] = (
                trusted(TimeSeries, timestamps=stamps, values=values, columns=self._columns[name])
                if trust
                else TimeSeries(stamps, values, self._columns[name])
            )
        if trust:  # the store passed check_all: build the window without re-checking it
            spikes = trusted(SpikeTrains, times=times, units=units)
            return trusted(Recording, spikes=spikes, behavior=behavior, **self._window_fields(t0, t1, shift))
        if units.size and (units.min() < 0 or units.max() >= self.n_units):
            raise DataError(
                f"{self.path}: spikes in [{t0}, {t1}) name unit index {int(units.max())} (or a negative one) but the "
                f"store has {self.n_units} units; the file is damaged. Rewrite it with write_recording"
            )
        return Recording(spikes=SpikeTrains(times, units), behavior=behavior, **self._window_fields(t0, t1, shift))

    def _window_fields(self, t0: float, t1: float, shift: float) -> dict[str, Any]:
        return dict(
            units=self.units,
            session=self.session,
            subject=self.subject,
            trials=None if self.trials is None else self.trials.overlapping(t0, t1, shift=shift),
            start=t0 - shift,
            end=t1 - shift,
            origin=self.origin + shift,
            bin_size=self.bin_size,
            source=self.source,
            metadata=self.metadata,
        )

    def window(self, t0: float, t1: float) -> Window:
        """A :class:`Window` on ``[t0, t1)`` with times relative to ``t0``."""
        return Window(recording=self.slice(t0, t1, relative=True), t0=float(t0), t1=float(t1))

    def load(self) -> Recording:
        """The whole recording in memory (as :func:`read_recording`)."""
        return read_recording(self.path)

    def __repr__(self) -> str:
        return (
            f"LazyRecording({str(self.path)!r}, session={self.session!r}, units={self.n_units}, "
            f"spikes={self.n_spikes}, span=[{self.start:.3f}, {self.end:.3f}) s)"
        )


# ------------------------------------------------------------------------- load
def load(path: str | Path, *, session: str | None = None, bin_size: float | None = None) -> Recording:
    """Read any supported file, choosing the reader from its content (not its suffix).

    Supported: spikefm stores (:func:`read_recording`), NWB 2.x HDF5 files
    (:func:`spikefm.data.nwb.read_nwb`), MATLAB (v5 or v7.3) and numpy ``.npz`` binned count
    files (:func:`spikefm.data.count_files.read_count_file`), and spike-time sessions: a folder,
    a MATLAB spike-time struct or a ``.videoPositionTracking`` file
    (:func:`spikefm.data.spike_time_session.read_spike_time_session`).

    Args:
        path: the file (or a spike-time session folder).
        session: overrides the session id stored in the file.
        bin_size: bin width (s) for count files that store no time axis; ignored otherwise.
    """
    rec = _load_any(Path(path), session, bin_size)
    check_spike_span(rec, where=str(path))
    return rec


def _load_any(path: Path, session: str | None, bin_size: float | None) -> Recording:
    from spikefm.data.readers import read_by_content

    other = read_by_content(path, session)  # FALCON, temporaldata, Kilosort / Phy, Blackrock / Plexon
    if other is not None:
        return other
    other = _load_non_hdf5(path, session, bin_size)
    if other is not None:
        return other
    if path.is_file() and not h5py.is_hdf5(path):
        raise DataError(
            f"{path}: unrecognised format; spikefm reads NWB 2.x (HDF5), spikefm stores (.h5), MATLAB .mat and "
            "numpy .npz binned count files, MATLAB spike-time structs and .videoPositionTracking files"
        )
    with _open_hdf5(path) as handle:
        is_store = "spikefm_format" in handle.attrs
        is_nwb = "nwb_version" in handle.attrs or "units" in handle
    if is_store:
        rec = read_recording(path)
        return rec if session is None else replace(rec, session=session)
    if is_nwb:
        return read_nwb(path, session=session)
    raise DataError(
        f"{path}: unrecognised HDF5 content (no 'spikefm_format' or 'nwb_version' attribute and no /units "
        "table); supported formats are spikefm stores (write_recording) and NWB 2.x files with a units table"
    )


def _load_non_hdf5(path: Path, session: str | None, bin_size: float | None) -> Recording | None:
    """MATLAB, numpy and spike-time-session inputs; None when ``path`` is none of them."""
    from spikefm.data.count_files import read_count_file
    from spikefm.data.matlab import mat_classes, mat_version
    from spikefm.data.spike_time_session import read_spike_time_session
    from spikefm.data.video_tracking import is_video_tracking

    if path.is_dir() or is_video_tracking(path):
        return read_spike_time_session(path, session=session)
    if mat_version(path) is not None:
        if mat_classes(path).get("spikes") in ("cell", "struct"):
            return read_spike_time_session(path, session=session)
        return read_count_file(path, bin_size=bin_size, session=session)
    if path.is_file() and zipfile.is_zipfile(path) and path.suffix == ".npz":
        return read_count_file(path, bin_size=bin_size, session=session)
    return None
