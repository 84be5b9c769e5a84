import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.nwb import read_nwb
from spikefm.data.recording import DataError

NLB_FILE = "nlb/sub-Jenkins_ses-small_desc-test_ecephys.nwb"
MTL_FILE = "human_mtl/sub-4_ses-4_ecephys+image.nwb"

UNIT_SPIKES = {  # unit id -> spike times; unit 30 never fires and must be kept
    10: [0.05, 0.41, 1.7, 2.2],
    20: [0.3, 0.31, 2.95],
    30: [],
    40: [1.0, 1.0001, 1.5, 2.5, 2.9],
}
TRIALS = [  # start, stop, split, move_onset_time
    (0.0, 1.0, "train", 0.4),
    (1.0, 2.0, "val", 1.45),
    (2.0, 3.0, "test", 2.6),
]


def _nwbfile(session_id: str | None = "sess-A"):
    from pynwb import NWBFile
    from pynwb.file import Subject

    return NWBFile(
        session_description="spikefm test file",
        identifier="spikefm-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
        session_id=session_id,
        subject=Subject(subject_id="monkey-J", species="Macaca mulatta"),
    )


def _write(nwb, path: Path) -> Path:
    from pynwb import NWBHDF5IO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


def _add_units_and_electrodes(nwb) -> None:
    device = nwb.create_device(name="array")
    group = nwb.create_electrode_group(name="shank", description="d", location="M1", device=device)
    for location in ("M1", "PMd"):
        nwb.add_electrode(group=group, location=location)
    nwb.add_unit_column(name="heldout", description="NLB held-out neuron")
    for row, (unit_id, times) in enumerate(UNIT_SPIKES.items()):
        nwb.add_unit(id=unit_id, spike_times=times, heldout=row % 2 == 1, electrodes=[row % 2])


@pytest.fixture(scope="module")
def nlb_like(tmp_path_factory) -> Path:
    """An NLB-layout file: units with heldout + electrodes, trials, behaviour, a raw series."""
    from pynwb import TimeSeries
    from pynwb.behavior import Position, SpatialSeries
    from pynwb.ecephys import ElectricalSeries

    nwb = _nwbfile()
    _add_units_and_electrodes(nwb)
    nwb.add_trial_column(name="split", description="NLB split")
    nwb.add_trial_column(name="move_onset_time", description="movement onset")
    for start, stop, split, onset in TRIALS:
        nwb.add_trial(start_time=start, stop_time=stop, split=split, move_onset_time=onset)
    behavior = nwb.create_processing_module(name="behavior", description="behaviour")
    stamps = np.arange(0.0, 3.0, 0.01)
    velocity = np.stack([np.sin(stamps), np.cos(stamps)], axis=1)
    behavior.add(TimeSeries(name="hand_vel", data=velocity, timestamps=stamps, unit="mm/s"))
    cursor = SpatialSeries(
        name="cursor_pos", data=np.arange(20.0).reshape(10, 2), starting_time=0.5, rate=4.0, reference_frame="screen"
    )
    behavior.add(Position(name="cursor", spatial_series=cursor))
    region = nwb.create_electrode_table_region(region=[0, 1], description="both")
    nwb.add_acquisition(ElectricalSeries(name="raw", data=np.zeros((50, 2)), electrodes=region, rate=1000.0))
    return _write(nwb, tmp_path_factory.mktemp("nwb") / "nlb_like.nwb")


def _h5py_units(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    with h5py.File(path, "r") as f:
        times, ends = f["units/spike_times"][()], f["units/spike_times_index"][()]
        return f["units/id"][()], np.split(times, ends[:-1])


def test_counts_and_spikes_match_h5py(nlb_like):
    rec = read_nwb(nlb_like)
    ids, per_unit = _h5py_units(nlb_like)
    with h5py.File(nlb_like, "r") as f:
        n_trials = f["intervals/trials/start_time"].shape[0]
    assert rec.n_units == ids.size == 4
    assert rec.n_spikes == sum(len(t) for t in per_unit) == sum(len(t) for t in UNIT_SPIKES.values())
    assert len(rec.trials) == n_trials == 3
    assert rec.units.ids.tolist() == [str(i) for i in ids]
    for got, want in zip(rec.spikes.per_unit(rec.n_units), per_unit):
        np.testing.assert_array_equal(got, want)
    assert rec.spike_counts().tolist() == [4, 3, 0, 5]  # the silent unit is kept


def test_units_table_fields(nlb_like):
    rec = read_nwb(nlb_like)
    assert rec.units.heldout.tolist() == [False, True, False, True]
    assert rec.units.region.tolist() == ["M1", "PMd", "M1", "PMd"]


def test_trials_keep_every_column(nlb_like):
    trials = read_nwb(nlb_like).trials
    np.testing.assert_array_equal(trials.start, [t[0] for t in TRIALS])
    np.testing.assert_array_equal(trials.end, [t[1] for t in TRIALS])
    assert trials.columns["split"].tolist() == ["train", "val", "test"]
    assert trials.columns["split"].dtype.kind == "U"
    np.testing.assert_array_equal(trials.columns["move_onset_time"], [t[3] for t in TRIALS])


def test_behavior_series(nlb_like):
    rec = read_nwb(nlb_like)
    assert set(rec.behavior) == {"hand_vel", "cursor_pos"}  # the raw ElectricalSeries is not behaviour
    assert rec.metadata["skipped_series"] == ["/acquisition/raw"]
    stamps = np.arange(0.0, 3.0, 0.01)
    np.testing.assert_array_equal(rec.behavior["hand_vel"].timestamps, stamps)
    np.testing.assert_allclose(rec.behavior["hand_vel"].values[:, 0], np.sin(stamps))
    cursor = rec.behavior["cursor_pos"]
    np.testing.assert_allclose(cursor.timestamps, 0.5 + np.arange(10) / 4.0)
    np.testing.assert_array_equal(cursor.values, np.arange(20.0).reshape(10, 2))
    assert cursor.columns == ("x", "y")


def test_session_and_subject(nlb_like):
    rec = read_nwb(nlb_like)
    assert (rec.session, rec.subject, rec.source) == ("sess-A", "monkey-J", str(nlb_like))
    assert read_nwb(nlb_like, session="override").session == "override"
    assert rec.start == 0.0 and rec.end > 3.0  # spans spikes and trials


def test_session_defaults_to_file_stem(tmp_path):
    nwb = _nwbfile(session_id=None)
    _add_units_and_electrodes(nwb)
    path = _write(nwb, tmp_path / "my_session.nwb")
    rec = read_nwb(path)
    assert rec.session == "my_session"
    assert rec.trials is None and rec.behavior == {}


def test_interval_tables_merge_without_trials(tmp_path):
    from pynwb import TimeSeries
    from pynwb.epoch import TimeIntervals

    nwb = _nwbfile()
    _add_units_and_electrodes(nwb)
    late = TimeIntervals(name="recognition", description="r")
    late.add_column(name="frame", description="image")
    late.add_interval(start_time=2.0, stop_time=2.5, frame="a.png")
    early = TimeIntervals(name="encoding", description="e")
    early.add_column(name="clip_id", description="clip")
    early.add_interval(start_time=0.1, stop_time=0.9, clip_id=7)
    nwb.add_time_intervals(late)
    nwb.add_time_intervals(early)
    # A TTL log stored out of time order, as in the human MTL file.
    nwb.add_acquisition(TimeSeries(name="events", data=np.array([3, 1, 2]), timestamps=[2.0, 0.5, 1.0], unit="NA"))
    rec = read_nwb(_write(nwb, tmp_path / "tables.nwb"))
    assert rec.trials.columns["table"].tolist() == ["encoding", "recognition"]
    assert rec.trials.columns["frame"].tolist() == ["", "a.png"]
    assert rec.trials.columns["clip_id"][0] == 7 and np.isnan(rec.trials.columns["clip_id"][1])
    np.testing.assert_array_equal(rec.behavior["events"].timestamps, [0.5, 1.0, 2.0])
    np.testing.assert_array_equal(rec.behavior["events"].values[:, 0], [1, 2, 3])


def test_missing_units_table_names_file_and_field(tmp_path):
    path = _write(_nwbfile(), tmp_path / "no_units.nwb")
    with pytest.raises(DataError, match=r"no_units\.nwb.*'units'"):
        read_nwb(path)


def test_nan_spike_time_names_file_field_and_unit(nlb_like, tmp_path):
    path = tmp_path / "nan.nwb"
    shutil.copy(nlb_like, path)
    with h5py.File(path, "r+") as f:
        f["units/spike_times"][5] = np.nan  # row 5 is the second spike of unit id 20
    with pytest.raises(DataError, match=r"nan\.nwb.*units/spike_times.*unit id 20"):
        read_nwb(path)


def test_unreadable_files(tmp_path):
    text = tmp_path / "notes.nwb"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match=r"notes\.nwb.*not an HDF5 file"):
        read_nwb(text)
    with pytest.raises(DataError, match="file not found"):
        read_nwb(tmp_path / "absent.nwb")


def _write_minimal_nwb(path: Path, per_unit: list[list[float]]) -> None:
    """The bare HDF5 layout of an NWB units table, written without pynwb (fast)."""
    with h5py.File(path, "w") as f:
        f.attrs["nwb_version"] = "2.7.0"
        units = f.create_group("units")
        units["spike_times"] = np.concatenate([np.asarray(t, float) for t in per_unit])
        units["spike_times_index"] = np.cumsum([len(t) for t in per_unit]).astype(np.uint32)
        units["id"] = np.arange(len(per_unit)) * 3


@settings(max_examples=25, deadline=None)
@given(
    per_unit=st.lists(
        st.lists(st.floats(0, 100, allow_nan=False), max_size=20).map(sorted), min_size=1, max_size=8
    )
)
def test_units_round_trip_from_raw_layout(tmp_path_factory, per_unit):
    path = tmp_path_factory.mktemp("raw") / "raw.nwb"
    _write_minimal_nwb(path, per_unit)
    rec = read_nwb(path)
    assert rec.n_units == len(per_unit) and rec.n_spikes == sum(map(len, per_unit))
    assert rec.units.ids.tolist() == [str(3 * i) for i in range(len(per_unit))]
    assert np.all(np.diff(rec.spikes.times) >= 0)
    for got, want in zip(rec.spikes.per_unit(rec.n_units), per_unit):
        np.testing.assert_array_equal(got, want)


def test_real_nlb_file(shared_data):
    rec = read_nwb(shared_data(NLB_FILE))
    assert (rec.n_units, rec.n_spikes, len(rec.trials)) == (107, 32897, 100)
    assert "move_onset_time" in rec.trials.columns and "split" in rec.trials.columns
    assert rec.subject == "Jenkins"
    ids, per_unit = _h5py_units(shared_data(NLB_FILE))
    for got, want in zip(rec.spikes.per_unit(rec.n_units), per_unit):
        np.testing.assert_array_equal(got, want)
    assert set(rec.units.region) <= {"M1", "PMd"}


def test_real_human_mtl_file(shared_data):
    rec = read_nwb(shared_data(MTL_FILE))
    assert rec.n_units == 35 and rec.n_spikes == 214278
    assert len(rec.trials) == 90 + 180 + 180  # encoding + recognition + time discrimination tables
    assert rec.units.position.shape == (35, 3)
    assert 0.0 <= rec.start < 1.0 and rec.end < 3000.0  # the stray -1.5e9 s TTL stays out of the domain
