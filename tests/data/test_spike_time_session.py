from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from spikefm.data.recording import DataError
from spikefm.data.spike_struct import read_spike_struct
from spikefm.data.spike_time_session import read_spike_time_session
from spikefm.data.store import load
from spikefm.data.video_tracking import read_video_tracking


FIELDS = b"Fields: <time uint32><xloc uint16><yloc uint16><xloc2 uint16><yloc2 uint16>\n"


def write_struct(path: Path) -> Path:
    """spikes{day}{epoch}{tetrode}{cell} with an empty placeholder and a unit with no spike."""
    tet1 = np.empty((1, 3), object)
    tet1[0, 0] = {"time": np.array([[0.1], [0.5]]), "meanrate": 1.0}
    tet1[0, 1] = np.zeros((1, 0))
    tet1[0, 2] = {"time": np.zeros((0, 1))}
    tet2 = np.empty((1, 1), object)
    tet2[0, 0] = {"time": np.array([[0.3]])}
    tetrodes = np.empty((1, 2), object)
    tetrodes[0, 0], tetrodes[0, 1] = tet1, tet2
    epoch = np.empty((1, 1), object)
    epoch[0, 0] = tetrodes
    sio.savemat(path, {"spikes": epoch})
    return path


def write_tracking(path: Path, ticks, xy, *, fields: bytes = FIELDS, clock: bytes = b"clockrate: 30000\n") -> Path:
    dtype = np.dtype([("time", "<u4"), ("xloc", "<u2"), ("yloc", "<u2"), ("xloc2", "<u2"), ("yloc2", "<u2")])
    records = np.zeros(len(ticks), dtype)
    records["time"], records["xloc"], records["yloc"] = ticks, xy[:, 0], xy[:, 1]
    header = b"<Start settings>\nthreshold: 199\n" + clock + fields + b"<End settings>\n"
    path.write_bytes(header + records.tobytes())
    return path


def test_struct_reader_names_units_by_tetrode_and_cell_and_drops_empty_ones(tmp_path):
    spikes, units, metadata = read_spike_struct(write_struct(tmp_path / "spikes.mat"))
    assert units.ids.tolist() == ["t1c1", "t2c1"]
    np.testing.assert_allclose(spikes.times, [0.1, 0.3, 0.5])
    assert spikes.units.tolist() == [0, 1, 0] and metadata["empty_units_dropped"] == 1


def test_tracking_reader_converts_clock_ticks_to_seconds(tmp_path):
    xy = np.array([[10, 20], [11, 21], [12, 22]])
    series = read_video_tracking(write_tracking(tmp_path / "t.videoPositionTracking", [3000, 3500, 4000], xy))
    np.testing.assert_allclose(series.timestamps, [0.1, 3500 / 30000, 4000 / 30000])
    assert series.columns == ("x", "y") and series.values.tolist() == xy.tolist()


@pytest.mark.parametrize(
    "kwargs, cut, message",
    [
        ({"fields": b"Fields: \n"}, 0, "'Fields' is missing"),
        ({"fields": FIELDS.replace(b"uint16>\n", b"uint9>\n")}, 0, "unknown types"),
        ({"clock": b""}, 0, "'clockrate' is missing"),
        ({}, 5, "not a whole number of 12-byte records"),
    ],
)
def test_malformed_tracking_files_are_clear_errors(tmp_path, kwargs, cut, message):
    path = write_tracking(tmp_path / "t.videoPositionTracking", [1, 2], np.ones((2, 2)), **kwargs)
    if cut:
        path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(DataError, match=f"t.videoPositionTracking: .*{message}"):
        read_video_tracking(path)


def test_backwards_clock_is_a_clear_error(tmp_path):
    path = write_tracking(tmp_path / "t.videoPositionTracking", [5, 2], np.ones((2, 2)))
    with pytest.raises(DataError, match="t.videoPositionTracking: field 'time'.*not sorted"):
        read_video_tracking(path)


def test_struct_without_time_field_is_a_clear_error(tmp_path):
    cells = np.empty((1, 1), object)
    cells[0, 0] = {"spiketimes": np.array([[0.1]])}
    sio.savemat(tmp_path / "spikes.mat", {"spikes": cells})
    with pytest.raises(DataError, match=r"spikes.mat: field 'spikes\{.*\}.time' is missing"):
        read_spike_struct(tmp_path / "spikes.mat")


def test_session_reads_from_folder_or_either_file(tmp_path):
    write_struct(tmp_path / "spikes.mat")
    write_tracking(tmp_path / "trajectory.videoPositionTracking", [3000, 6000], np.ones((2, 2)))
    for path in (tmp_path, tmp_path / "spikes.mat", tmp_path / "trajectory.videoPositionTracking"):
        rec = load(path)
        assert rec.n_units == 2 and rec.behavior["position"].timestamps.tolist() == [0.1, 0.2]
        assert rec.session == tmp_path.name and rec.bin_size is None


def test_tracking_without_spikes_is_a_clear_error(tmp_path):
    path = write_tracking(tmp_path / "t.videoPositionTracking", [1, 2], np.ones((2, 2)))
    with pytest.raises(DataError, match="spike-time .mat file"):
        read_spike_time_session(path)


@pytest.mark.parametrize(
    "folder, units, spikes, span", [("nelpy_wmaze", 25, 518_352, (64, 4372)), ("nelpy_lineartrack", 31, 28_829, None)]
)
def test_real_hippocampus_sessions(shared_data, folder, units, spikes, span):
    rec = read_spike_time_session(shared_data(f"hippocampus/{folder}"))
    assert (rec.n_units, rec.n_spikes) == (units, spikes)
    position = rec.behavior["position"]
    assert position.columns == ("x", "y")
    assert np.median(np.diff(position.timestamps)) == pytest.approx(1 / 60, rel=0.01)
    if span:
        assert span[0] <= rec.spikes.times[0] and rec.spikes.times[-1] <= span[1]
        assert position.timestamps[0] == pytest.approx(5.357, abs=1e-3)
