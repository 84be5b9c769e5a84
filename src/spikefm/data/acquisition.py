"""Acquisition-system files with sorted spikes, read through neo: Blackrock ``.nev``, Plexon ``.plx`` / ``.pl2``.

``pip install 'spikefm[acquisition]'``. Every spike train of every segment is kept, keyed by neo's unit
id (Blackrock: ``Unit <electrode><class>``; Plexon: its channel / unit name); units split across
segments are merged. The unit's classification (``sorted`` / ``unclassified`` / ``noise``) is its quality;
the electrode label, when the file has one, is kept in ``metadata["channel"]``. Raw signals are not read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.data.unit_trains import recording_from_unit_trains

__all__ = ["ACQUISITION_SUFFIXES", "read_acquisition"]

#: file suffix -> neo IO class name
ACQUISITION_SUFFIXES = {".nev": "BlackrockIO", ".plx": "PlexonIO", ".pl2": "Plexon2IO"}


def _io(path: Path):
    try:
        import neo.io
    except ImportError:
        raise DataError(f"{path}: reading {path.suffix} files needs neo: pip install 'spikefm[acquisition]'") from None
    io = getattr(neo.io, ACQUISITION_SUFFIXES[path.suffix.lower()])(filename=str(path))
    if hasattr(io, "progress_bar"):
        io.progress_bar = False  # PlexonIO draws tqdm bars while parsing unless told not to
    return io


def read_acquisition(path: str | Path, *, session: str | None = None) -> Recording:
    """Read the sorted spikes of a Blackrock / Plexon file into a :class:`Recording`.

    Raises:
        DataError: unknown suffix, neo missing, or a file neo cannot parse (its error, with the file named).
    """
    path = Path(path)
    if path.suffix.lower() not in ACQUISITION_SUFFIXES:
        raise DataError(f"{path}: not an acquisition file spikefm reads ({sorted(ACQUISITION_SUFFIXES)})")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        block = _io(path).read_block(lazy=False, load_waveforms=False)
    except DataError:
        raise
    except Exception as err:  # neo raises many kinds for malformed files
        raise DataError(f"{path}: neo cannot read it ({type(err).__name__}: {err})") from err
    trains: dict[str, list[np.ndarray]] = {}
    quality: dict[str, str] = {}
    channel: dict[str, str] = {}
    for segment in block.segments:
        for train in segment.spiketrains:
            uid = str(train.annotations.get("id", train.name))
            trains.setdefault(uid, []).append(np.asarray(train.times.rescale("s").magnitude, np.float64))
            quality[uid] = str(train.annotations.get("unit_classification", ""))
            channel[uid] = str(train.annotations.get("channel_id", ""))
    ids = list(trains)
    return recording_from_unit_trains(
        [np.sort(np.concatenate(trains[u])) for u in ids], ids, session=session or path.stem, source=str(path),
        quality=[quality[u] for u in ids], metadata={"format": path.suffix.lower().lstrip("."),
                                                     "channel": [channel[u] for u in ids]},
    )
