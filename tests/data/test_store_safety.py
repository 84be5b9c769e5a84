"""Stores others can read, writes that leave nothing behind, and damaged stores that fail on open."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikefm.data import store
from spikefm.data.recording import DataError, Recording, SpikeTrains, TimeSeries, Units
from spikefm.data.store import open_recording, read_recording, write_recording


def _recording(n_spikes: int = 20_000, duration: float = 20.0) -> Recording:
    rng = np.random.default_rng(0)
    stamps = np.arange(0.0, duration, 0.01)
    return Recording(
        spikes=SpikeTrains(np.sort(rng.uniform(0, duration, n_spikes)), rng.integers(0, 10, n_spikes)),
        units=Units(ids=np.arange(10)),
        session="s",
        behavior={"hand_vel": TimeSeries(stamps, rng.normal(size=(stamps.size, 2)))},
        start=0.0,
        end=duration,
    )


@pytest.fixture
def stored(tmp_path) -> tuple[Path, Recording]:
    rec = _recording()
    return write_recording(rec, tmp_path / "rec.h5"), rec


# ------------------------------------------------------------- permissions and temporary files
@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_store_mode_follows_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        path = write_recording(_recording(100), tmp_path / "rec.h5")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def broken(handle, rec, compression):
        handle.create_dataset("partial", data=np.zeros(1000))
        raise KeyboardInterrupt  # as Ctrl-C in the middle of a write

    monkeypatch.setattr(store, "_write_all", broken)
    with pytest.raises(KeyboardInterrupt):
        write_recording(_recording(100), tmp_path / "rec.h5")
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "rec.h5"
    child = (
        "import sys, os, signal, numpy as np\n"
        "from spikefm.data import store\n"
        "def hang(handle, rec, compression):\n"
        "    handle.create_dataset('partial', data=np.zeros(1000)); handle.flush()\n"
        "    print('writing', flush=True); signal.pause()\n"
        "store._write_all = hang\n"
        "from spikefm.data.recording import Recording, SpikeTrains, Units\n"
        "rec = Recording(spikes=SpikeTrains(np.zeros(1), np.zeros(1, int)), units=Units(ids=['a']), session='s')\n"
        f"store.write_recording(rec, {str(target)!r})\n"
    )
    process = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "writing"
    process.send_signal(signal.SIGKILL)
    process.wait()
    (left,) = tmp_path.iterdir()  # the killed writer could not clean up ...
    assert left.name.startswith(".rec.h5.") and left.name.endswith(".tmp")
    write_recording(_recording(100), target)  # ... the next write of the same store does
    assert [p.name for p in tmp_path.iterdir()] == ["rec.h5"]


def test_temporary_file_of_a_live_writer_is_kept(tmp_path):
    live = tmp_path / f".rec.h5.{__import__('socket').gethostname()}.{os.getpid()}.abcd1234.tmp"
    live.write_bytes(b"in progress")
    write_recording(_recording(100), tmp_path / "rec.h5")
    assert live.exists()


# ------------------------------------------------------------- damaged stores
def _damage(path: Path, dataset: str, edit) -> None:
    with h5py.File(path, "r+") as handle:
        values = handle[dataset][()]
        del handle[dataset]
        handle.create_dataset(dataset, data=edit(values))


@pytest.mark.parametrize(
    ("dataset", "edit"),
    [
        ("spikes/index_rows", lambda rows: rows[:-1]),  # truncated index
        ("spikes/index_times", lambda t: t[:-1]),
        ("spikes/index_rows", lambda rows: np.where(np.arange(rows.size) == 2, rows[2] + 100, rows)),  # shifted entry
        ("spikes/index_times", lambda t: np.where(np.arange(t.size) == 3, t[3] + 0.05, t)),  # moved time
        ("spikes/index_times", lambda t: t[::-1]),
        ("spikes/units", lambda u: u[:-10]),  # times and units disagree in length
        ("behavior/hand_vel/index_rows", lambda rows: rows + 1),
    ],
    ids=["rows-truncated", "times-truncated", "row-shifted", "time-moved", "times-unsorted", "units-short",
         "behaviour-rows"],
)
def test_damaged_index_fails_on_open(stored, dataset, edit):
    path, rec = stored
    _damage(path, dataset, edit)
    with pytest.raises(DataError, match="damaged"):
        lazy = open_recording(path)
        # Every entry is checked at the latest when a read relies on it; none may return fewer spikes.
        for t0 in np.arange(0.0, 20.0, 0.5):
            assert lazy.slice(t0, t0 + 0.5).n_spikes == rec.slice(t0, t0 + 0.5).n_spikes


def test_unit_index_beyond_the_units_table_fails_on_read(stored):
    path, _ = stored
    _damage(path, "spikes/units", lambda u: np.where(np.arange(u.size) == 5, 99, u).astype(np.int32))
    with pytest.raises(DataError, match="unit index 99"):
        open_recording(path).slice(0.0, 20.0)


def test_intact_store_opens_and_reads_every_window(stored):
    path, rec = stored
    lazy = open_recording(path)
    for t0 in np.arange(-1.0, 21.0, 0.7):
        assert lazy.slice(t0, t0 + 0.7).n_spikes == rec.slice(t0, t0 + 0.7).n_spikes
    assert read_recording(path).n_spikes == rec.n_spikes
