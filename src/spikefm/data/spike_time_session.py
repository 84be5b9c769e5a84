"""A session stored as a spike-time struct (``spikes.mat``) beside a video tracking file.

This is the layout of the hippocampus sessions in ``shared/data/hippocampus``: one folder per
session with ``spikes.mat`` (see :mod:`spikefm.data.spike_struct`) and one
``*.videoPositionTracking`` file (see :mod:`spikefm.data.video_tracking`). Both clocks count
seconds from the same origin, so the position series goes in as ``behavior["position"]``
unchanged; the recording spans the union of spikes and tracking.

>>> rec = read_spike_time_session("shared/data/hippocampus/nelpy_wmaze")  # doctest: +SKIP
>>> rec.n_units, list(rec.behavior)  # doctest: +SKIP
(25, ['position'])
"""

from __future__ import annotations

from pathlib import Path

from spikefm.data.recording import DataError, Recording
from spikefm.data.spike_struct import read_spike_struct
from spikefm.data.video_tracking import is_video_tracking, read_video_tracking

__all__ = ["read_spike_time_session", "session_files"]

_TRACKING_SUFFIX = ".videoPositionTracking"


def _only(candidates: list[Path], what: str, folder: Path) -> Path | None:
    if len(candidates) > 1:
        raise DataError(f"{folder}: several {what} files ({[c.name for c in candidates]}); pass the one to read")
    return candidates[0] if candidates else None


def session_files(path: str | Path) -> tuple[Path, Path | None]:
    """(spike struct file, tracking file or None) for a session folder or either file in it."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    tracking = sorted(p for p in folder.glob(f"*{_TRACKING_SUFFIX}") if is_video_tracking(p))
    spikes = sorted(folder.glob("*.mat"))
    if path.is_file() and path.suffix == ".mat":
        return path, _only(tracking, "tracking", folder)
    if path.is_file() and is_video_tracking(path):
        tracking = [path]
    spike_file = _only(spikes, "spike .mat", folder)
    if spike_file is None:
        raise DataError(
            f"{path}: field 'spikes' is missing; a tracking file holds position only, "
            "spikefm needs the session's spike-time .mat file in the same folder"
        )
    return spike_file, _only(tracking, "tracking", folder)


def read_spike_time_session(path: str | Path, *, session: str | None = None) -> Recording:
    """A :class:`Recording` with exact spike times and ``behavior["position"]`` (pixels) when tracked.

    Args:
        path: the session folder, its spike-time ``.mat`` or its tracking file.
        session: session id; defaults to the folder name.
    """
    spike_file, tracking_file = session_files(path)
    spikes, units, metadata = read_spike_struct(spike_file)
    behavior = {}
    if tracking_file is not None:
        behavior["position"] = read_video_tracking(tracking_file)
        metadata["tracking_file"] = str(tracking_file)
        metadata["position_units"] = "pixels"
    return Recording(
        spikes=spikes,
        units=units,
        session=session or spike_file.parent.name,
        behavior=behavior,
        source=str(spike_file),
        metadata=metadata,
    )
