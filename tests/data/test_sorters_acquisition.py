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


@pytest.mark.parametrize("suffix, io_name, rate, ids", [
    (".nev", "BlackrockIO", 30000, ["Unit 1000", "Unit 1001", "Unit 3002"]),  # Blackrock: electrode, class
    (".plx", "PlexonIO", 40000, ["ch1#0", "ch1#1", "ch3#2"]),
])
def test_acquisition_file_loads_every_unit_with_exact_counts(tmp_path, suffix, io_name, rate, ids):
    neo = pytest.importorskip("neo")
    from nev_files import write_nev
    from plx_files import write_plx

    rng = np.random.default_rng(0)
    spikes = {key: np.sort(rng.integers(0, 10 * rate, n)) for key, n in (((1, 0), 50), ((1, 1), 40), ((3, 2), 30))}
    path = (write_nev if suffix == ".nev" else write_plx)(tmp_path / f"session{suffix}", spikes)
    rec = load(path)
    block = getattr(neo.io, io_name)(filename=str(path)).read_block(load_waveforms=False)
    neo_counts = {str(st.annotations["id"]): len(st) for st in block.segments[0].spiketrains}
    assert dict(zip(rec.units.ids.tolist(), rec.spike_counts().tolist())) == neo_counts == dict(zip(ids, [50, 40, 30]))
    np.testing.assert_allclose(rec.spikes.per_unit(3)[2], spikes[(3, 2)] / rate)
    if suffix == ".nev":
        assert rec.units.quality.tolist() == ["unclassified", "sorted", "sorted"]


def test_truncated_nev_is_a_data_error(tmp_path):
    pytest.importorskip("neo")
    path = tmp_path / "broken.nev"
    path.write_bytes(b"NEURALEV" + b"\x00" * 20)
    with pytest.raises(DataError, match="broken.nev"):
        load(path)
