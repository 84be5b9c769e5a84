import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.data.recording import DataError
from spikefm.data.store import load

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def phy_folder(tmp_path_factory):
    """A Phy folder written by spikeinterface's own exporter from its ground-truth generator."""
    pytest.importorskip("spikeinterface")
    from spikeinterface.core import create_sorting_analyzer, generate_ground_truth_recording
    from spikeinterface.exporters import export_to_phy

    recording, sorting = generate_ground_truth_recording(durations=[3.0], num_units=5, num_channels=4, seed=0)
    analyzer = create_sorting_analyzer(sorting, recording, sparse=False, format="memory")
    analyzer.compute(["random_spikes", "templates"], verbose=False)
    folder = tmp_path_factory.mktemp("sorted") / "phy"
    export_to_phy(analyzer, folder, compute_pc_features=False, compute_amplitudes=False, copy_binary=False,
                  verbose=False)
    return folder, sorting


def test_phy_folder_loads_with_exact_spike_counts(phy_folder):
    folder, truth = phy_folder
    rec = load(folder)
    assert rec.metadata["format"] == "phy" and rec.n_units == 5
    expected = truth.count_num_spikes_per_unit()
    np.testing.assert_array_equal(rec.spike_counts(), [expected[u] for u in truth.get_unit_ids()])
    frames = truth.get_unit_spike_train(unit_id=truth.get_unit_ids()[0], segment_index=0)
    np.testing.assert_allclose(rec.spikes.per_unit(5)[0], frames / truth.get_sampling_frequency())
    assert rec.units.quality is not None and rec.units.position is None or rec.units.position.shape == (5, 2)


def test_kilosort_folder_takes_kslabel_as_quality(phy_folder, tmp_path):
    import shutil

    folder = Path(shutil.copytree(phy_folder[0], tmp_path / "ks"))
    (folder / "cluster_KSLabel.tsv").write_text("cluster_id\tKSLabel\n" + "".join(f"{i}\tgood\n" for i in range(5)))
    rec = load(folder)
    assert rec.metadata["format"] == "kilosort" and rec.n_spikes == load(phy_folder[0]).n_spikes
    assert set(rec.units.quality.tolist()) == {"good"}


def test_malformed_phy_folder_is_a_data_error(phy_folder, tmp_path):
    import shutil

    folder = Path(shutil.copytree(phy_folder[0], tmp_path / "bad"))
    np.save(folder / "spike_clusters.npy", np.zeros(3, np.int64))  # fewer labels than spikes
    with pytest.raises(DataError, match="bad"):
        load(folder)


def test_inspect_reads_a_phy_folder(phy_folder):
    result = CliRunner().invoke(app, ["inspect", str(phy_folder[0])], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert f"{phy_folder[1].count_num_spikes_per_unit(outputs='array').sum():,}" in result.output


def test_blackrock_nev_loads_every_unit_with_exact_counts(tmp_path):
    neo = pytest.importorskip("neo")
    from nev_files import write_nev

    rng = np.random.default_rng(0)
    spikes = {(1, 0): rng.integers(0, 300_000, 50), (1, 1): rng.integers(0, 300_000, 40),
              (3, 2): rng.integers(0, 300_000, 30)}
    path = write_nev(tmp_path / "session.nev", {k: np.sort(v) for k, v in spikes.items()})
    rec = load(path)
    block = neo.io.BlackrockIO(filename=str(path)).read_block(load_waveforms=False)
    neo_counts = {str(st.annotations["id"]): len(st) for st in block.segments[0].spiketrains}
    assert dict(zip(rec.units.ids.tolist(), rec.spike_counts().tolist())) == neo_counts
    assert rec.n_spikes == 120 and rec.units.quality.tolist() == ["unclassified", "sorted", "sorted"]
    np.testing.assert_allclose(rec.spikes.per_unit(3)[2], np.sort(spikes[(3, 2)]) / 30000)


def test_plexon_plx_loads_every_unit_with_exact_counts(tmp_path):
    neo = pytest.importorskip("neo")
    from plx_files import write_plx

    rng = np.random.default_rng(1)
    spikes = {(1, 0): rng.integers(0, 400_000, 50), (1, 1): rng.integers(0, 400_000, 40),
              (2, 1): rng.integers(0, 400_000, 30)}
    path = write_plx(tmp_path / "session.plx", {k: np.sort(v) for k, v in spikes.items()})
    rec = load(path)
    block = neo.io.PlexonIO(filename=str(path)).read_block(load_waveforms=False)
    neo_counts = {str(st.annotations["id"]): len(st) for st in block.segments[0].spiketrains}
    assert dict(zip(rec.units.ids.tolist(), rec.spike_counts().tolist())) == neo_counts == {
        "ch1#0": 50, "ch1#1": 40, "ch2#1": 30}
    np.testing.assert_allclose(rec.spikes.per_unit(3)[1], np.sort(spikes[(1, 1)]) / 40000)


def test_truncated_nev_is_a_data_error(tmp_path):
    pytest.importorskip("neo")
    path = tmp_path / "broken.nev"
    path.write_bytes(b"NEURALEV" + b"\x00" * 20)
    with pytest.raises(DataError, match="broken.nev"):
        load(path)
