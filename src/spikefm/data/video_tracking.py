"""Binary video position tracking files (``*.videoPositionTracking``, Frank-lab / Trodes style).

A text header between ``<Start settings>`` and ``<End settings>`` holds ``key: value`` lines,
among them ``clockrate: 30000`` and a record layout such as
``Fields: <time uint32><xloc uint16><yloc uint16><xloc2 uint16><yloc2 uint16>``. After the
header line come fixed-size little-endian records in that layout. Time is in clock ticks;
seconds are ``time / clockrate``, on the same clock as the spike times of the session.

The reader returns the first LED's position (``xloc``, ``yloc``) in pixels as a
:class:`~spikefm.data.recording.TimeSeries` with columns ``("x", "y")``; the second LED's
columns are added as ``("x2", "y2")`` only when they are not all zero.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from spikefm.data.recording import DataError, TimeSeries

__all__ = ["read_video_tracking", "is_video_tracking"]

_START, _END = b"<Start settings>", b"<End settings>"
_TYPES = {"uint8": "u1", "uint16": "<u2", "uint32": "<u4", "uint64": "<u8", "int16": "<i2", "int32": "<i4",
          "int64": "<i8", "single": "<f4", "double": "<f8", "float32": "<f4", "float64": "<f8"}


def is_video_tracking(path: Path) -> bool:
    """Whether ``path`` is a file starting with the ``<Start settings>`` header."""
    if not path.is_file():
        return False
    with open(path, "rb") as handle:
        return handle.read(len(_START)) == _START


def _header(raw: bytes, path: Path) -> tuple[dict[str, str], int]:
    """Header ``key: value`` pairs and the offset of the first record."""
    end = raw.find(_END)
    if not raw.startswith(_START) or end < 0:
        raise DataError(f"{path}: field 'header' is missing; expected text from '<Start settings>' to '<End settings>'")
    newline = raw.find(b"\n", end)
    offset = len(raw) if newline < 0 else newline + 1
    settings = {}
    for line in raw[len(_START) : end].decode("latin-1").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            settings[key.strip().lower()] = value.strip()
    return settings, offset


def _record_dtype(settings: dict[str, str], path: Path) -> np.dtype:
    fields = re.findall(r"<(\w+)\s+(\w+)>", settings.get("fields", ""))
    if not fields:
        raise DataError(f"{path}: field 'Fields' is missing from the header; cannot tell the record layout")
    unknown = [kind for _, kind in fields if kind not in _TYPES]
    if unknown:
        raise DataError(f"{path}: field 'Fields' uses unknown types {unknown}; known: {sorted(_TYPES)}")
    names = [name for name, _ in fields]
    if "time" not in names or "xloc" not in names or "yloc" not in names:
        raise DataError(f"{path}: field 'Fields' needs time, xloc and yloc, got {names}")
    return np.dtype([(name, _TYPES[kind]) for name, kind in fields])


def _clock_rate(settings: dict[str, str], path: Path) -> float:
    try:
        rate = float(settings["clockrate"])
    except (KeyError, ValueError) as err:
        raise DataError(f"{path}: field 'clockrate' is missing or not a number in the header") from err
    if not rate > 0:
        raise DataError(f"{path}: field 'clockrate' must be > 0, got {rate}")
    return rate


def read_video_tracking(path: str | Path) -> TimeSeries:
    """Position in pixels against time in seconds from a ``.videoPositionTracking`` file.

    Raises:
        DataError: no header, unknown record layout, no clock rate, a truncated last record,
            or time stamps that go backwards; the message names the file and field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.read_bytes()
    settings, offset = _header(raw, path)
    dtype = _record_dtype(settings, path)
    body = len(raw) - offset
    if body % dtype.itemsize:
        raise DataError(
            f"{path}: field 'records' is {body} bytes, not a whole number of {dtype.itemsize}-byte records "
            "(truncated file?)"
        )
    records = np.frombuffer(raw, dtype=dtype, offset=offset)
    columns = ["xloc", "yloc"] + [c for c in ("xloc2", "yloc2") if c in dtype.names and np.any(records[c])]
    values = np.stack([records[c].astype(np.float64) for c in columns], axis=1)
    times = records["time"].astype(np.float64) / _clock_rate(settings, path)
    try:
        return TimeSeries(times, values, tuple(c.replace("loc", "") for c in columns))
    except DataError as err:
        raise DataError(f"{path}: field 'time': {err}") from err
