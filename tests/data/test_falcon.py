import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikefm.data.falcon import falcon_arrays, read_falcon
from spikefm.data.recording import DataError
from spikefm.data.store import load

sys.path.insert(0, str(Path(__file__).parent))
from falcon_files import write_falcon_file  # noqa: E402


@pytest.mark.parametrize("task", ["m1", "m2", "h1"])
def test_falcon_reader_bins_exactly_as_falcon_challenge(task, tmp_path):
    dataloaders = pytest.importorskip("falcon_challenge.dataloaders")  # pip install --no-deps falcon-challenge
    from falcon_challenge.config import FalconTask

    path = write_falcon_file(tmp_path / f"sub-MonkeyL-held-in-calib_ses-20120924_{task}.nwb", task)
    rec = read_falcon(path)
    arrays = falcon_arrays(rec)
    counts, target, trial_change, eval_mask = dataloaders.load_nwb(path, getattr(FalconTask, task))
    np.testing.assert_array_equal(arrays.counts, counts)
    np.testing.assert_array_equal(arrays.target, target)
    np.testing.assert_array_equal(arrays.eval_mask, eval_mask)
    np.testing.assert_array_equal(arrays.trial_change, trial_change)
    with h5py.File(path) as handle:  # every spike of the file, none lost or doubled
        assert rec.n_spikes == handle["units/spike_times"].shape[0] == counts.sum()
    assert rec.session == "20120924" and rec.metadata["falcon"]["role"] == "held_in"
    assert rec.metadata["falcon"]["part"] == "calib" and len(rec.trials) == 6


def test_load_dispatches_falcon_files(tmp_path):
    path = write_falcon_file(tmp_path / "sub-MonkeyN-held-out-calib_ses-20201030.nwb", "m2")
    rec = load(path)
    assert set(rec.behavior) == {"finger_vel", "eval_mask"} and rec.metadata["falcon"]["role"] == "held_out"


def test_malformed_falcon_files_are_data_errors(tmp_path):
    path = write_falcon_file(tmp_path / "m1.nwb", "m1")
    with h5py.File(path, "a") as handle:
        del handle["acquisition/eval_mask"]
    with pytest.raises(DataError, match="acquisition/eval_mask"):
        read_falcon(path)
    path = write_falcon_file(tmp_path / "h1.nwb", "h1")
    with h5py.File(path, "a") as handle:
        data = handle["acquisition/TrialNum/data"][()]
        del handle["acquisition/TrialNum/data"]
        handle["acquisition/TrialNum/data"] = data[:-3]
    with pytest.raises(DataError, match="TrialNum"):
        read_falcon(path)
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as handle:
        handle.attrs["nwb_version"] = "2.5.0"
    with pytest.raises(DataError, match="not a FALCON file"):
        read_falcon(plain)
