"""Which reader a file needs, for the formats other than spikefm stores, plain NWB and count files.

:func:`spikefm.data.store.load` asks :func:`read_by_content` first; None means "not one of these", and
``load`` goes on with its own formats. Detection reads only a file's header (HDF5 groups / attributes)
or a folder's file names; the optional libraries are imported only when their format is found.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from spikefm.data.recording import DataError, Recording

__all__ = ["read_by_content", "detect_format"]


def detect_format(path: Path) -> str | None:
    """``"falcon"``, ``"temporaldata"``, ``"sorter"``, ``"acquisition"`` or None (not a format this module reads)."""
    from spikefm.data.acquisition import ACQUISITION_SUFFIXES
    from spikefm.data.sorters import is_sorter_folder

    if is_sorter_folder(path):
        return "sorter"
    if path.suffix.lower() in ACQUISITION_SUFFIXES:
        return "acquisition"
    if path.is_file() and h5py.is_hdf5(path):
        from spikefm.data.falcon import falcon_task
        from spikefm.data.temporaldata_io import is_temporaldata

        try:
            with h5py.File(path, "r") as handle:
                if falcon_task(handle) is not None:
                    return "falcon"
                if is_temporaldata(handle):
                    return "temporaldata"
        except OSError:
            return None  # unreadable HDF5: store.load reports it
    return None


def read_by_content(path: str | Path, session: str | None = None) -> Recording | None:
    """The recording at ``path`` if it is one of :func:`detect_format`'s formats, else None."""
    path = Path(path)
    kind = detect_format(path)
    if kind is None:
        return None
    if kind == "falcon":
        from spikefm.data.falcon import read_falcon

        return read_falcon(path, session=session)
    if kind == "temporaldata":
        from spikefm.data.temporaldata_io import read_temporaldata

        return read_temporaldata(path, session=session)
    if kind == "sorter":
        from spikefm.data.sorters import read_sorter_folder

        return read_sorter_folder(path, session=session)
    if kind == "acquisition":
        from spikefm.data.acquisition import read_acquisition

        return read_acquisition(path, session=session)
    raise DataError(f"{path}: no reader for format {kind!r}")  # unreachable: every detected kind has a branch
