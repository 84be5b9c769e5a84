"""A store is checked in full once, then windows are trusted; damage still fails clearly."""

import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikefm.data import recording as recording_module
from spikefm.data import store
from spikefm.data.recording import DataError, Recording, SpikeTrains, TimeSeries, Units
from spikefm.data.store import open_recording, write_recording


def _recording(n_spikes: int = 30_000, duration: float = 20.0) -> Recording:
    rng = np.random.default_rng(1)
    stamps = np.arange(0.0, duration, 0.01)
    return Recording(
        spikes=SpikeTrains(np.sort(rng.uniform(0, duration, n_spikes)), rng.integers(0, 10, n_spikes)),
        units=Units(ids=np.arange(10)),
        session="s",
        behavior={"hand_vel": TimeSeries(stamps, rng.normal(size=(stamps.size, 2)))},
        start=0.0,
        end=duration,
    )


@pytest.fixture(params=[None, "lzf"], ids=["contiguous", "lzf"])
def stored(tmp_path, request) -> tuple[Path, Recording]:
    rec = _recording()
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
def test_windows_after_the_first_are_not_revalidated(stored, monkeypatch):
    path, rec = stored
    lazy = open_recording(path)
    lazy.window(0.0, 1.0)  # the first read checks the whole store
    counter = _validation_counter(monkeypatch)
    starts = np.linspace(0.0, 18.0, 50)
    windows = [lazy.window(t0, t0 + 1.5) for t0 in starts]
    assert counter.calls == 0
    monkeypatch.undo()
    for t0, window in zip(starts, windows):
        assert window.recording.n_spikes == rec.slice(t0, t0 + 1.5).n_spikes


def test_checking_per_window_still_validates_every_window(stored, monkeypatch):
    path, _ = stored
    lazy = open_recording(path, check="window")
    lazy.window(0.0, 1.0)
    counter = _validation_counter(monkeypatch)
    for t0 in np.linspace(0.0, 18.0, 5):
        lazy.window(t0, t0 + 1.5)
    assert counter.calls >= 5 * 3  # Recording, SpikeTrains and TimeSeries checks of each window


def test_store_is_checked_once_across_reopen_and_pickle(stored, monkeypatch):
    path, rec = stored
    lazy = open_recording(path)
    lazy.slice(0.0, 1.0)
    counter = _Counter(monkeypatch, [(store._TimeIndexed, "check_all")])
    lazy.close()
    assert lazy.slice(2.0, 3.0).n_spikes == rec.slice(2.0, 3.0).n_spikes
    clone = pickle.loads(pickle.dumps(lazy))
    assert clone.slice(4.0, 5.0).n_spikes == rec.slice(4.0, 5.0).n_spikes
    assert counter.calls == 0


def test_a_rewritten_store_is_checked_again(stored, monkeypatch):
    path, rec = stored
    lazy = open_recording(path)
    lazy.slice(0.0, 1.0)
    write_recording(rec, path)  # a new file version (new inode)
    lazy.close()
    counter = _Counter(monkeypatch, [(store._TimeIndexed, "check_all")])
    lazy.slice(0.0, 1.0)
    assert counter.calls == 2  # spikes and hand_vel


def test_unknown_check_mode_is_rejected(stored):
    with pytest.raises(ValueError, match="check must be one of"):
        open_recording(stored[0], check="never")


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
def test_damaged_rows_fail_on_the_first_read(stored, dataset, row, value, message):
    path, _ = stored
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
