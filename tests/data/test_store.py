import multiprocessing
import pickle
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikefm.data import store
from spikefm.data.recording import DataError, Intervals, Recording, SpikeTrains, TimeSeries, Units
from spikefm.data.store import load, open_recording, read_recording, write_recording

TEXT = st.text(alphabet="abcXYZ _-/.é0", max_size=8)
NAMES = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ----------------------------------------------------------------- strategies
def _floats(draw, n: int, lo: float = 0.0, hi: float = 10.0) -> np.ndarray:
    return np.array(draw(st.lists(st.floats(lo, hi, allow_nan=False), min_size=n, max_size=n)), dtype=np.float64)


@st.composite
def trial_tables(draw) -> Intervals | None:
    if draw(st.booleans()):
        return None
    k = draw(st.integers(0, 5))
    start = _floats(draw, k)
    end = start + _floats(draw, k, 0.0, 3.0)
    columns = {
        "split": np.array(draw(st.lists(TEXT, min_size=k, max_size=k)), dtype=str),
        "move_onset_time": _floats(draw, k),
        "condition": np.array(draw(st.lists(st.integers(-5, 5), min_size=k, max_size=k)), dtype=np.int16),
        "correct": np.array(draw(st.lists(st.booleans(), min_size=k, max_size=k)), dtype=bool),
    }
    ragged = np.empty(k, dtype=object)
    for row in range(k):
        ragged[row] = _floats(draw, draw(st.integers(0, 3)))
    columns["tags"] = ragged
    return Intervals(start, end, columns)


@st.composite
def behaviours(draw) -> dict[str, TimeSeries]:
    out = {}
    for name in draw(st.lists(NAMES, max_size=2, unique=True)):
        n, dim = draw(st.integers(0, 30)), draw(st.integers(1, 3))
        values = np.array(draw(st.lists(st.floats(-1e3, 1e3), min_size=n * dim, max_size=n * dim)))
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        columns = tuple(draw(st.lists(NAMES, min_size=dim, max_size=dim))) if draw(st.booleans()) else ()
        out[name] = TimeSeries(np.sort(_floats(draw, n)), values.reshape(n, dim).astype(dtype), columns)
    return out


@st.composite
def recordings(draw) -> Recording:
    n_units = draw(st.integers(1, 6))
    n_spikes = draw(st.integers(0, 80))
    times = np.sort(_floats(draw, n_spikes))
    unit_index = np.array(draw(st.lists(st.integers(0, n_units - 1), min_size=n_spikes, max_size=n_spikes)), int)
    optional = lambda strategy: draw(st.none() | strategy)  # noqa: E731
    units = Units(
        ids=np.array([f"u{i}" for i in range(n_units)]),
        region=optional(st.lists(TEXT, min_size=n_units, max_size=n_units)),
        position=optional(st.just(np.arange(n_units * 2, dtype=float).reshape(n_units, 2))),
        quality=optional(st.lists(st.floats(0, 1), min_size=n_units, max_size=n_units).map(np.array)),
        heldout=np.array(draw(st.lists(st.booleans(), min_size=n_units, max_size=n_units)), bool),
    )
    return Recording(
        spikes=SpikeTrains(times, unit_index),
        units=units,
        session=draw(TEXT),
        subject=draw(TEXT),
        behavior=draw(behaviours()),
        trials=draw(trial_tables()),
        start=optional(st.floats(-1.0, 0.0)),
        end=optional(st.floats(10.0, 12.0)),
        origin=draw(st.floats(-5, 5)),
        bin_size=optional(st.floats(0.001, 0.1)),
        source=draw(TEXT),
        metadata=draw(st.dictionaries(NAMES, st.integers() | TEXT | st.lists(st.booleans()), max_size=3)),
    )


# ----------------------------------------------------------------- comparison
def _same_array(a: np.ndarray | None, b: np.ndarray | None, what: str) -> None:
    assert (a is None) == (b is None), what
    if a is None:
        return
    assert a.dtype == b.dtype and a.shape == b.shape, f"{what}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if a.dtype == object:
        for x, y in zip(a, b):
            _same_array(np.asarray(x), np.asarray(y), what)
    else:
        np.testing.assert_array_equal(a, b, err_msg=what)


def assert_same_recording(a: Recording, b: Recording) -> None:
    _same_array(a.spikes.times, b.spikes.times, "spikes.times")
    _same_array(a.spikes.units, b.spikes.units, "spikes.units")
    for name in ("ids", "region", "position", "quality", "heldout"):
        _same_array(getattr(a.units, name), getattr(b.units, name), f"units.{name}")
    assert list(a.behavior) == list(b.behavior)
    for name, series in a.behavior.items():
        other = b.behavior[name]
        _same_array(series.timestamps, other.timestamps, f"{name}.timestamps")
        _same_array(series.values, other.values, f"{name}.values")
        assert series.columns == other.columns
    assert (a.trials is None) == (b.trials is None)
    if a.trials is not None:
        _same_array(a.trials.start, b.trials.start, "trials.start")
        _same_array(a.trials.end, b.trials.end, "trials.end")
        assert list(a.trials.columns) == list(b.trials.columns)
        for name in a.trials.columns:
            _same_array(a.trials.columns[name], b.trials.columns[name], f"trials.{name}")
    for name in ("session", "subject", "start", "end", "origin", "bin_size", "source", "metadata"):
        assert getattr(a, name) == getattr(b, name), name


def dense_recording(n_spikes: int = 60_000, duration: float = 60.0, seed: int = 0) -> Recording:
    """Enough spikes to span several chunks and index buckets."""
    rng = np.random.default_rng(seed)
    stamps = np.arange(0.0, duration, 0.005)
    return Recording(
        spikes=SpikeTrains(np.sort(rng.uniform(0, duration, n_spikes)), rng.integers(0, 40, n_spikes)),
        units=Units(ids=np.arange(40)),
        session="dense",
        behavior={"hand_vel": TimeSeries(stamps, rng.normal(size=(stamps.size, 2)), ("vx", "vy"))},
        trials=Intervals(np.arange(0, 60.0, 2.0), np.arange(1, 61.0, 2.0), {"split": np.array(["train", "test"] * 15)}),
        start=0.0,
        end=duration,
    )


@pytest.fixture(scope="module", params=[None, "lzf"], ids=["contiguous", "lzf"])
def dense_store(tmp_path_factory, request) -> tuple[Path, Recording]:
    """The dense recording stored memory-mappable (default) and chunked + compressed (read through h5py)."""
    rec = dense_recording()
    return write_recording(rec, tmp_path_factory.mktemp("store") / "dense.h5", compression=request.param), rec


# ----------------------------------------------------------------- round trip
@settings(max_examples=40, **SETTINGS)
@given(rec=recordings(), compression=st.sampled_from([None, "lzf"]))
def test_round_trip_is_lossless(tmp_path, rec, compression):
    path = write_recording(rec, tmp_path / "rec.h5", compression=compression)
    assert_same_recording(read_recording(path), rec)


@settings(max_examples=30, **SETTINGS)
@given(rec=recordings(), t0=st.floats(-1, 11), width=st.floats(0.01, 6), relative=st.booleans())
def test_lazy_slice_equals_eager_slice(tmp_path, rec, t0, width, relative):
    path = write_recording(rec, tmp_path / "rec.h5")
    with open_recording(path) as lazy:
        got = lazy.slice(t0, t0 + width, relative=relative)
    assert_same_recording(got, rec.slice(t0, t0 + width, relative=relative))


def test_dense_lazy_slices_match_memory(dense_store):
    path, rec = dense_store
    lazy = open_recording(path)
    # Narrow, bucket-straddling and wide windows, at the edges and past them.
    for t0, t1 in [(10.0, 11.0), (0.0, 0.001), (-5.0, 3.0), (59.5, 70.0), (3.3, 47.9), (61.0, 62.0)]:
        assert_same_recording(lazy.slice(t0, t1, relative=True), rec.slice(t0, t1, relative=True))
    window = lazy.window(10.0, 12.5)
    assert (window.t0, window.t1) == (10.0, 12.5)
    assert_same_recording(window.recording, rec.window(10.0, 12.5).recording)


def test_lazy_header_needs_no_spikes(dense_store):
    path, rec = dense_store
    lazy = open_recording(path)
    assert (lazy.session, lazy.start, lazy.end, lazy.n_units, lazy.n_spikes) == ("dense", 0.0, 60.0, 40, rec.n_spikes)
    assert lazy.unit_keys() == rec.unit_keys()
    assert lazy.trials.columns["split"].tolist() == rec.trials.columns["split"].tolist()


def test_slice_reads_log_n_plus_k_rows(dense_store, monkeypatch):
    path, _ = dense_store
    lazy = open_recording(path)
    lazy.slice(0.0, 1.0)  # loads the coarse indices once
    rows_read = []
    original = h5py.Dataset.__getitem__

    def counting(self, key, *args):
        out = original(self, key, *args)
        rows_read.append(np.shape(out)[0] if np.ndim(out) else 1)
        return out

    monkeypatch.setattr(h5py.Dataset, "__getitem__", counting)
    mapped = h5py.File(path)["spikes/times"].chunks is None
    for t0, t1 in [(20.0, 20.5), (5.0, 45.0)]:
        rows_read.clear()
        window = lazy.slice(t0, t1)
        k = window.n_spikes + window.behavior["hand_vel"].timestamps.size
        if mapped:  # contiguous store: rows come from the memory map, no HDF5 read at all
            assert rows_read == [] and k > 0
            continue
        # Each of the two sorted columns (spikes, hand_vel) reads at most two index buckets beyond
        # its k rows; times and payload are each read once.
        assert sum(rows_read) <= 2 * k + 2 * 2 * store._INDEX_ROWS


# ----------------------------------------------------------------- workers
def _count_in_child(lazy, t0, t1, queue) -> None:
    queue.put(lazy.slice(t0, t1).n_spikes)


def test_lazy_recording_pickles_and_reopens(dense_store):
    path, rec = dense_store
    lazy = open_recording(path)
    lazy.slice(1.0, 2.0)
    clone = pickle.loads(pickle.dumps(lazy))
    assert clone._handle is None  # the handle never travels; it is reopened on use
    assert_same_recording(clone.slice(30.0, 31.0), rec.slice(30.0, 31.0))
    lazy.close()
    assert lazy.slice(5.0, 6.0).n_spikes == rec.slice(5.0, 6.0).n_spikes


def test_lazy_recording_in_forked_worker(dense_store):
    path, rec = dense_store
    lazy = open_recording(path)
    lazy.slice(0.0, 1.0)  # parent holds an open handle across the fork
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_count_in_child, args=(lazy, 7.0, 9.0, queue))
    worker.start()
    got = queue.get(timeout=30)
    worker.join(timeout=30)
    assert got == rec.slice(7.0, 9.0).n_spikes and worker.exitcode == 0
    assert lazy.slice(7.0, 9.0).n_spikes == got  # the parent's handle still works


# ----------------------------------------------------------------- errors + load
def test_not_a_store_is_a_clear_error(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    for reader in (read_recording, open_recording):
        with pytest.raises(DataError, match=r"other\.h5.*not a spikefm store"):
            reader(other)
    text = tmp_path / "text.h5"
    text.write_text("hello")
    with pytest.raises(DataError, match=r"text\.h5.*not an HDF5 file"):
        read_recording(text)


def test_newer_format_version_is_refused(dense_store, tmp_path):
    path = write_recording(dense_recording(n_spikes=10), tmp_path / "v.h5")
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = store.FORMAT_VERSION + 1
    with pytest.raises(DataError, match="format_version"):
        read_recording(path)


def test_unstorable_inputs_fail_loudly(tmp_path):
    rec = dense_recording(n_spikes=10)
    bad_meta = Recording(rec.spikes, rec.units, metadata={"when": object()})
    with pytest.raises(DataError, match="metadata.*JSON"):
        write_recording(bad_meta, tmp_path / "a.h5")
    bad_name = Recording(rec.spikes, rec.units, behavior={"a/b": rec.behavior["hand_vel"]})
    with pytest.raises(DataError, match="contain no '/'"):
        write_recording(bad_name, tmp_path / "b.h5")
    assert not list(tmp_path.glob("*.tmp"))  # failed writes leave nothing behind


def test_load_dispatches_by_content(dense_store, tmp_path):
    path, rec = dense_store
    assert_same_recording(load(path), rec)
    assert load(path, session="renamed").session == "renamed"
    nwb = tmp_path / "tiny.h5"  # NWB content under a non-NWB suffix
    with h5py.File(nwb, "w") as f:
        f.attrs["nwb_version"] = "2.7.0"
        f["units/spike_times"] = np.array([0.5, 0.2, 0.9])
        f["units/spike_times_index"] = np.array([1, 3])
        f["units/id"] = np.array([4, 5])
    assert load(nwb).n_spikes == 3 and load(nwb).units.ids.tolist() == ["4", "5"]
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(DataError, match=r"other\.h5.*supported formats are spikefm stores.*NWB"):
        load(other)
