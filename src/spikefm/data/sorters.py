"""Kilosort and Phy output folders, read through spikeinterface's sorting extractors.

A folder with ``params.py`` and ``spike_times.npy`` is a Kilosort / Phy output; it is a Kilosort folder
when it has Kilosort's ``cluster_KSLabel.tsv`` and Phy's otherwise (the two readers differ in which
cluster table sets the quality label). ``pip install 'spikefm[sorters]'``.

What is kept: every unit (cluster) and all its spikes, times = sample frames / the sampling rate;
unit ids = cluster ids; quality from the ``quality`` / ``group`` / ``KSLabel`` property; a region from a
``brain_area`` / ``location`` / ``region`` property; positions from ``channel_positions.npy`` at each
unit's ``ch``. Multi-segment sortings are refused (spikefm has one clock per recording).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.data.unit_trains import recording_from_unit_trains

__all__ = ["is_sorter_folder", "read_sorter_folder"]

_REGION = ("brain_area", "location", "region")
# Phy's manual curation label first; in a Kilosort folder, Kilosort's own good / mua label first.
_QUALITY = {"phy": ("quality", "group", "KSLabel"), "kilosort": ("KSLabel", "quality", "group")}


def is_sorter_folder(path: Path) -> bool:
    """True for a Kilosort / Phy output folder."""
    return path.is_dir() and (path / "params.py").is_file() and (path / "spike_times.npy").is_file()


def _extractors():
    try:
        import spikeinterface.extractors as extractors
    except ImportError:
        raise DataError("reading Kilosort / Phy folders needs spikeinterface: pip install 'spikefm[sorters]'") from None
    return extractors


def _property(sorting, names: tuple[str, ...]) -> np.ndarray | None:
    keys = sorting.get_property_keys()
    name = next((n for n in names if n in keys), None)
    return None if name is None else np.asarray(sorting.get_property(name)).astype(str)


def _positions(sorting, folder: Path) -> np.ndarray | None:
    if "ch" not in sorting.get_property_keys() or not (folder / "channel_positions.npy").is_file():
        return None
    positions = np.load(folder / "channel_positions.npy", allow_pickle=False)
    channels = np.asarray(sorting.get_property("ch")).astype(np.int64)
    return positions[channels] if channels.size and channels.max() < len(positions) else None


def read_sorter_folder(path: str | Path, *, session: str | None = None) -> Recording:
    """Read a Kilosort / Phy output folder into a :class:`Recording`.

    Raises:
        DataError: spikeinterface missing, the folder malformed (its reader's error, with the folder named),
            or a multi-segment sorting.
    """
    folder = Path(path)
    extractors = _extractors()
    kind = "kilosort" if (folder / "cluster_KSLabel.tsv").is_file() else "phy"
    try:
        sorting = extractors.read_kilosort(folder) if kind == "kilosort" else extractors.read_phy(folder)
        if sorting.get_num_segments() != 1:
            raise DataError(f"{sorting.get_num_segments()} segments; spikefm reads single-segment sortings")
        rate = float(sorting.get_sampling_frequency())
        ids = sorting.get_unit_ids()
        trains = [sorting.get_unit_spike_train(unit_id=u, segment_index=0).astype(np.float64) / rate for u in ids]
    except Exception as err:  # spikeinterface raises many kinds for malformed folders, some only on first read
        raise DataError(
            f"{folder}: spikeinterface cannot read this {kind} folder ({type(err).__name__}: {err})"
        ) from err
    return recording_from_unit_trains(
        trains, [str(u) for u in ids], session=session or folder.name, source=str(folder),
        region=_property(sorting, _REGION), quality=_property(sorting, _QUALITY[kind]),
        position=_positions(sorting, folder),
        metadata={"format": kind, "sampling_frequency": rate},
    )
