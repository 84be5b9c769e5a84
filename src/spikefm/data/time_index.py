"""The time-indexed rows of a spikefm store: a sorted time column and its row-aligned payload.

:class:`TimeIndexed` reads the rows of a window ``[t0, t1)`` for
:class:`~spikefm.data.store.LazyRecording`, from a memory map when the store keeps them
contiguous (:func:`memory_map`) or through h5py and a coarse index when they are chunked,
and checks them: the index structure on open, then either every row once
(:meth:`TimeIndexed.check_all`) or every index entry a read relies on.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from spikefm.data.recording import DataError

__all__ = ["INDEX_ROWS", "TimeIndexed", "memory_map"]

INDEX_ROWS = 4096  # spikes per index bucket: the most rows read beyond the window, per edge
CHECK_ROWS = 1 << 20  # rows per block when a whole store is checked once


def memory_map(dataset: h5py.Dataset, path: Path) -> np.ndarray | None:
    """The dataset's rows as a read-only memory map, when HDF5 keeps them contiguous and unfiltered.

    Such rows lie at one offset in the file, so a window is a plain numpy slice (no HDF5 call);
    chunked or compressed datasets (older stores, ``compression="lzf"``) return None and are
    read through h5py.
    """
    if dataset.chunks is not None or dataset.external or dataset.is_virtual or dataset.dtype.kind not in "biuf":
        return None
    offset = dataset.id.get_offset()
    if offset is None or dataset.size == 0:
        return None
    if offset + dataset.nbytes > path.stat().st_size:
        raise DataError(f"{path}: dataset '{dataset.name}' runs past the end of the file; the file is truncated")
    return np.memmap(path, dtype=dataset.dtype, mode="r", offset=offset, shape=dataset.shape).view(np.ndarray)


class TimeIndexed:
    """A sorted time dataset and its row-aligned payload on disk, with the coarse index in memory.

    On construction the index's shape, order and bounds are checked (in memory, O(index)). Then
    either the whole dataset is checked once (:meth:`check_all`: times sorted and finite, unit
    indices in range, every index entry exact), after which reads trust the rows, or (``check=
    "window"``) a sample of index entries is checked now and every entry a read relies on before
    that read uses it (two rows each), and the caller validates each window.

    Rows are read from a memory map when the store keeps them contiguous (see
    :func:`memory_map`), else through h5py with the coarse index.
    """

    def __init__(self, group: h5py.Group, times: str, payload: str, *, where: str, path: Path) -> None:
        self.times = group[times]
        self.payload = group[payload]
        self.index_times = group["index_times"][()]
        self.index_rows = group["index_rows"][()]
        self.size = int(self.times.shape[0])
        self.where = where
        self.trusted = False
        self._verified = np.zeros(self.index_times.size, bool)
        self._check_structure(payload)
        mapped = (memory_map(self.times, path), memory_map(self.payload, path))
        self._mapped = None if any(m is None for m in mapped) else mapped
        for entry in np.unique(np.linspace(0, self.index_times.size - 1, min(self.index_times.size, 16)).astype(int)):
            self._verify(int(entry))

    def _corrupt(self, why: str) -> DataError:
        return DataError(
            f"{self.where}: the store's time index disagrees with its data ({why}); the file is damaged. "
            "Rewrite it from its source with write_recording"
        )

    def _check_structure(self, payload: str) -> None:
        n, rows, times = self.size, self.index_rows, self.index_times
        if self.payload.shape[0] != n:
            raise self._corrupt(f"{n} times but {self.payload.shape[0]} rows of '{payload}'")
        expected = -(-n // INDEX_ROWS)
        if times.size != expected or rows.size != expected:
            raise self._corrupt(
                f"{times.size} index times and {rows.size} index rows for {n} rows, expected {expected}"
            )
        if expected and (rows[0] != 0 or rows[-1] >= n or np.any(np.diff(rows) < 0)):
            raise self._corrupt("index rows are not increasing from 0 within the data")
        if expected and not (np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0)):
            raise self._corrupt("index times are not sorted and finite")

    def _verify(self, entry: int) -> None:
        """Index entry ``entry`` names the first row at or after its time (read two rows, once)."""
        if entry >= self._verified.size or self._verified[entry]:
            return
        row, time = int(self.index_rows[entry]), self.index_times[entry]
        around = self.times[max(row - 1, 0) : row + 1]
        if around[-1] < time or (row > 0 and around[0] >= time):
            raise self._corrupt(f"entry {entry}: row {row} is not the first with time >= {time}")
        self._verified[entry] = True

    def _rows(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
        if self._mapped is not None:
            return self._mapped[0][lo:hi], self._mapped[1][lo:hi]
        return self.times[lo:hi], self.payload[lo:hi]

    def check_all(self, n_units: int | None) -> None:
        """Check every row once, in blocks of bounded memory; afterwards reads trust the rows.

        Args:
            n_units: the units table's size, for a unit-index payload (spikes); None for behaviour.

        Raises:
            DataError: non-finite or unsorted times, a unit index out of range, a payload of the
                wrong rank, or an index entry that is not the first row at or after its time.
        """
        if self.payload.ndim != (1 if n_units is not None else 2):
            raise self._corrupt(f"payload of shape {self.payload.shape}")
        if n_units is not None and self.payload.dtype.kind not in "iu":
            raise self._corrupt(f"unit indices of dtype {self.payload.dtype}")
        below = np.zeros(self.index_times.size, np.int64)  # rows with time < each index time
        last = -np.inf
        for lo in range(0, self.size, CHECK_ROWS):
            times, payload = self._rows(lo, min(lo + CHECK_ROWS, self.size))
            if not (np.isfinite(times).all() and times[0] >= last and np.all(times[1:] >= times[:-1])):
                raise self._corrupt(f"times in rows [{lo}, {lo + times.size}) are not sorted and finite")
            last = times[-1]
            below += np.searchsorted(times, self.index_times, side="left")
            if n_units is not None and (payload.min() < 0 or payload.max() >= n_units):
                bad = int(payload.max() if payload.max() >= n_units else payload.min())
                raise DataError(
                    f"{self.where}: rows [{lo}, {lo + times.size}) name unit index {bad} but the store has "
                    f"{n_units} units; the file is damaged. Rewrite it from its source with write_recording"
                )
        if not np.array_equal(below, self.index_rows):
            entry = int(np.flatnonzero(below != self.index_rows)[0])
            raise self._corrupt(f"entry {entry}: row {self.index_rows[entry]} is not the first with time >= "
                                f"{self.index_times[entry]}")
        self._verified[:] = True
        self.trusted = True

    def _bucket(self, t: float) -> tuple[int, int]:
        """Rows [a, b) holding the first row with time >= t (a == b == 0 if t precedes all)."""
        bucket = int(np.searchsorted(self.index_times, t, side="right")) - 1
        if bucket < 0:
            return 0, 0
        if not self.trusted:
            self._verify(bucket)
            self._verify(bucket + 1)
        end = int(self.index_rows[bucket + 1]) if bucket + 1 < self.index_rows.size else self.size
        return int(self.index_rows[bucket]), end

    def read(self, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
        """Times in ``[t0, t1)`` and their payload rows, reading O(log n + k) rows.

        From a memory map these are read-only views of the file: callers copy them (once, as
        they convert them) before handing them out.
        """
        if self._mapped is not None:
            times, payload = self._mapped
            lo, hi = times.searchsorted((t0, t1), side="left")
            return times[lo:hi], payload[lo:hi]
        a0, b0 = self._bucket(t0)
        a1, b1 = self._bucket(t1)
        if a1 - b0 <= INDEX_ROWS:
            # Edges close together: one read covers both edge buckets and the rows between.
            rows = self.times[a0:b1]
            lo, hi = np.searchsorted(rows, [t0, t1], side="left")
            return rows[lo:hi], self.payload[a0 + lo : a0 + hi]
        lo = a0 + int(np.searchsorted(self.times[a0:b0], t0, side="left"))
        hi = a1 + int(np.searchsorted(self.times[a1:b1], t1, side="left"))
        return self.times[lo:hi], self.payload[lo:hi]
