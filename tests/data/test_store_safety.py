"""Stores others can read, writes that leave nothing behind, damaged stores that fail on open or first read,
and a store checked once whose later windows are not re-validated."""

import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikefm.data import recording as recording_module
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


# ------------------------------------------------------------- checked once, then trusted
@pytest.fixture(params=[None, "lzf"], ids=["contiguous", "lzf"])
def stored_both(tmp_path, request) -> tuple[Path, Recording]:
    """A store in each layout: contiguous (memory-mapped reads) and lzf (h5py reads)."""
    rec = _recording(30_000)
    return write_recording(rec, tmp_path / "rec.h5", compression=request.param), rec


def _edit_in_place(path: Path, dataset: str, row: int, value) -> None:
    """Overwrite one row without changing the dataset's layout (contiguous stays memory-mapped)."""
    with h5py.File(path, "r+") as handle:
        handle[dataset][row] = value


class _Counter:
    """Wraps functions on their owners and counts the calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, targets: list[tuple[object, str]]) -> None:
        self.calls = 0
        for owner, name in targets:
            original = getattr(owner, name)
            monkeypatch.setattr(owner, name, self._wrap(original))

    def _wrap(self, original):
        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        return counted


def _validation_counter(monkeypatch) -> _Counter:
    return _Counter(monkeypatch, [
        (recording_module, "_check_times"),  # SpikeTrains / TimeSeries time checks
        (recording_module.SpikeTrains, "__post_init__"),
        (recording_module.TimeSeries, "__post_init__"),
        (recording_module.Recording, "__post_init__"),
        (store._TimeIndexed, "_verify"),
        (store._TimeIndexed, "check_all"),
    ])  # fmt: skip


# ------------------------------------------------------------------ no re-validation per window
def test_windows_after_the_first_are_not_revalidated(stored_both, monkeypatch):
    path, rec = stored_both
    lazy = open_recording(path)
    lazy.window(0.0, 1.0)  # the first read checks the whole store
    counter = _validation_counter(monkeypatch)
    starts = np.linspace(0.0, 18.0, 50)
    windows = [lazy.window(t0, t0 + 1.5) for t0 in starts]
    assert counter.calls == 0
    monkeypatch.undo()
    for t0, window in zip(starts, windows):
        assert window.recording.n_spikes == rec.slice(t0, t0 + 1.5).n_spikes


def test_checking_per_window_still_validates_every_window(stored_both, monkeypatch):
    path, _ = stored_both
    lazy = open_recording(path, check="window")
    lazy.window(0.0, 1.0)
    counter = _validation_counter(monkeypatch)
    for t0 in np.linspace(0.0, 18.0, 5):
        lazy.window(t0, t0 + 1.5)
    assert counter.calls >= 5 * 3  # Recording, SpikeTrains and TimeSeries checks of each window


def test_store_is_checked_once_across_reopen_and_pickle(stored_both, monkeypatch):
    path, rec = stored_both
    lazy = open_recording(path)
    lazy.slice(0.0, 1.0)
    counter = _Counter(monkeypatch, [(store._TimeIndexed, "check_all")])
    lazy.close()
    assert lazy.slice(2.0, 3.0).n_spikes == rec.slice(2.0, 3.0).n_spikes
    clone = pickle.loads(pickle.dumps(lazy))
    assert clone.slice(4.0, 5.0).n_spikes == rec.slice(4.0, 5.0).n_spikes
    assert counter.calls == 0


def test_a_rewritten_store_is_checked_again(stored_both, monkeypatch):
    path, rec = stored_both
    lazy = open_recording(path)
    lazy.slice(0.0, 1.0)
    write_recording(rec, path)  # a new file version (new inode)
    lazy.close()
    counter = _Counter(monkeypatch, [(store._TimeIndexed, "check_all")])
    lazy.slice(0.0, 1.0)
    assert counter.calls == 2  # spikes and hand_vel


def test_unknown_check_mode_is_rejected(stored_both):
    with pytest.raises(ValueError, match="check must be one of"):
        open_recording(stored_both[0], check="never")


# ------------------------------------------------------------------ damage fails clearly
@pytest.mark.parametrize(
    ("dataset", "row", "value", "message"),
    [
        ("spikes/times", 20_000, np.nan, "not sorted and finite"),
        ("spikes/times", 10_000, 19.9, "not sorted and finite"),
        ("spikes/units", 12_345, 10, "unit index 10 but the store has 10 units"),
        ("spikes/units", 7, -3, "unit index -3"),
        ("behavior/hand_vel/timestamps", 50, np.inf, "not sorted and finite"),
        ("spikes/index_rows", 3, 3 * 4096 + 1, r"entry 3: row 12289 is not the first"),
    ],
    ids=["nan-time", "unsorted-time", "unit-too-large", "unit-negative", "behaviour-inf", "index-row"],
)
def test_damaged_rows_fail_on_the_first_read(stored_both, dataset, row, value, message):
    path, _ = stored_both
    _edit_in_place(path, dataset, row, value)
    with pytest.raises(DataError, match=message) as caught:
        open_recording(path).slice(0.0, 0.5)  # a window far from the damage: the full check finds it
    assert str(path) in str(caught.value) and "damaged" in str(caught.value)


def test_truncated_contiguous_store_is_a_clear_error(tmp_path):
    path = write_recording(_recording(), tmp_path / "rec.h5")
    with h5py.File(path) as handle:
        end = handle["spikes/units"].id.get_offset() + handle["spikes/units"].nbytes
    with open(path, "r+b") as handle:
        handle.truncate(end - 100)
    with pytest.raises(DataError, match="truncated|damaged|cannot|not"):
        open_recording(path).slice(0.0, 1.0)


def test_default_store_is_memory_mapped_and_lzf_is_not(tmp_path):
    rec = _recording(2_000)
    plain = open_recording(write_recording(rec, tmp_path / "plain.h5"))
    packed = open_recording(write_recording(rec, tmp_path / "lzf.h5", compression="lzf"))
    assert plain._reader(None)._mapped is not None and plain._reader("hand_vel")._mapped is not None
    assert packed._reader(None)._mapped is None
    window = plain.slice(3.0, 4.0)
    assert window.spikes.times.flags.writeable and window.spikes.units.dtype == np.int64
    window.spikes.times[:] = -1.0  # a window owns its arrays: writing them leaves the store intact
    assert plain.slice(3.0, 4.0).n_spikes == rec.slice(3.0, 4.0).n_spikes
    assert np.array_equal(plain.slice(3.0, 4.0).spikes.times, rec.slice(3.0, 4.0).spikes.times)
