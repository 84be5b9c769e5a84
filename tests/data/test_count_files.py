
import numpy as np
import pytest
import scipy.io as sio

from spikefm.data.count_files import read_count_file
from spikefm.data.recording import DataError
from spikefm.data.store import load

M1, S1 = "m1_reaching/m1_stevenson_2011.mat", "m1_reaching/s1_data.mat"

RNG = np.random.default_rng(0)
COUNTS = RNG.poisson(2.0, size=(4, 40))  # [units, T] as in the Stevenson file
TIME = 10.0 + 0.05 * np.arange(40) + np.r_[0, RNG.uniform(-5e-4, 5e-4, 38), 0]  # a jittery clock
VEL = RNG.normal(size=(3, 40))


def _check(rec):
    assert rec.bin_size == 0.05 and rec.n_units == 4 and rec.start == pytest.approx(TIME[0])
    np.testing.assert_array_equal(rec.bin(0.05, rec.start), COUNTS.T)
    np.testing.assert_array_equal(rec.behavior["hand_vel"].values, VEL.T)


def test_mat_v5_v73_and_npz_count_files_read_alike(tmp_path, write_v73):
    data = {"spikes": COUNTS, "time": TIME[None], "handVel": VEL}
    sio.savemat(tmp_path / "a.mat", data)
    write_v73(tmp_path / "b.mat", data)
    np.savez(tmp_path / "c.npz", counts=COUNTS.T, time=TIME, hand_vel=VEL.T)
    for name in ("a.mat", "b.mat", "c.npz"):
        _check(read_count_file(tmp_path / name))
        _check(load(tmp_path / name))


def test_without_time_the_bin_size_must_be_given(tmp_path):
    sio.savemat(tmp_path / "s1.mat", {"spikes": COUNTS.T, "vel": VEL[:2].T})
    with pytest.raises(DataError, match="s1.mat: field 'time' is missing.*bin_size"):
        read_count_file(tmp_path / "s1.mat")
    rec = load(tmp_path / "s1.mat", bin_size=0.02)
    assert rec.bin_size == 0.02 and rec.start == 0.0 and rec.behavior["vel"].values.shape == (40, 2)


@pytest.mark.parametrize(
    "data, message",
    [
        ({"rates": COUNTS}, "field 'spikes' is missing"),
        ({"spikes": COUNTS, "time": np.r_[TIME[:20], TIME[20:] + 3.0][None]}, "'time' is not a regular grid"),
        ({"spikes": COUNTS, "time": TIME[:30][None]}, "neither axis has the 30 bins"),
        ({"spikes": -COUNTS, "time": TIME[None]}, "non-negative whole"),
    ],
)
def test_malformed_count_files_are_clear_errors(tmp_path, data, message):
    sio.savemat(tmp_path / "bad.mat", data)
    with pytest.raises(DataError, match=f"bad.mat.*{message}"):
        read_count_file(tmp_path / "bad.mat")


def test_stevenson_m1_file_reads_as_documented(shared_data):
    rec = read_count_file(shared_data(M1))
    assert (rec.n_units, rec.n_spikes, rec.bin_size) == (171, 2_352_815, 0.05)
    assert rec.behavior["hand_vel"].values.shape == (15_536, 3)
    assert rec.start == pytest.approx(12.591) and rec.duration == pytest.approx(15_536 * 0.05)
    np.testing.assert_array_equal(rec.bin(0.05, rec.start), sio.loadmat(shared_data(M1))["spikes"].T)


def test_s1_file_reads_with_its_stated_bin_width(shared_data):
    rec = read_count_file(shared_data(S1), bin_size=0.05)
    assert (rec.n_units, len(rec.behavior["vel"].timestamps)) == (52, 35_129)
