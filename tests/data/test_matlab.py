import h5py
import numpy as np
import pytest
import scipy.io as sio

from spikefm.data.matlab import mat_classes, mat_version, read_mat
from spikefm.data.recording import DataError


def test_v5_and_v73_read_the_same_arrays(tmp_path, write_v73):
    data = {"spikes": np.arange(6.0).reshape(2, 3), "time": np.array([[0.0, 0.1, 0.2]])}
    sio.savemat(tmp_path / "a.mat", data)
    write_v73(tmp_path / "b.mat", data)
    assert mat_version(tmp_path / "a.mat") == "5" and mat_version(tmp_path / "b.mat") == "7.3"
    for name in ("a.mat", "b.mat"):
        back = read_mat(tmp_path / name)
        np.testing.assert_array_equal(back["spikes"], data["spikes"])
        assert mat_classes(tmp_path / name)["spikes"] == "double"


def test_not_a_mat_file_is_a_clear_error(tmp_path):
    (tmp_path / "x.mat").write_text("hello")
    assert mat_version(tmp_path / "x.mat") is None
    with pytest.raises(DataError, match="x.mat: not a MATLAB"):
        read_mat(tmp_path / "x.mat")


def test_v73_struct_is_refused_with_the_fix(tmp_path, write_v73):
    path = tmp_path / "s.mat"
    write_v73(path, {})
    with h5py.File(path, "a") as handle:
        handle.create_group("spikes")
    with pytest.raises(DataError, match="'spikes' is a MATLAB struct.*-v7"):
        read_mat(path)
