from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.data.store import read_recording

runner = CliRunner()
NLB_FILE = Path(__file__).resolve().parents[2] / "shared/data/nlb/sub-Jenkins_ses-small_desc-test_ecephys.nwb"


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth")
    result = runner.invoke(app, ["synth", str(out), "--sessions", "2", "--units", "12-16", "--trials", "20"])
    assert result.exit_code == 0, result.output
    return out


def test_synth_writes_one_store_file_per_session(synth_dir):
    files = sorted(synth_dir.glob("*.h5"))
    assert [f.stem for f in files] == ["synth-0", "synth-1"]
    rec = read_recording(files[0])
    assert 12 <= rec.n_units <= 16 and len(rec.trials) == 20 and rec.n_spikes > 0


def test_inspect_prints_summary_and_plots(synth_dir, tmp_path):
    png = tmp_path / "raster.png"
    result = runner.invoke(app, ["inspect", str(synth_dir / "synth-0.h5"), "--plot", str(png)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "units" in result.output and "empty 20 ms bins" in result.output and "hand_vel" in result.output
    assert png.stat().st_size > 1000


def test_inspect_bad_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a recording")
    result = runner.invoke(app, ["inspect", str(bad)])
    assert result.exit_code == 2
    assert "notes.txt" in result.output


@pytest.mark.skipif(not NLB_FILE.exists(), reason="shared NLB file absent")
def test_inspect_reads_nlb_file():
    result = runner.invoke(app, ["inspect", str(NLB_FILE)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "107" in result.output and "32,897" in result.output
