import json
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


def test_train_eval_report_and_transfer_commands(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "configs"
    small = ["--set", "data.synthetic.n_trials=30", "--set", "data.synthetic.n_sessions=1",
             "--set", f"trainer.out_dir={tmp_path}", "--set", "trainer.max_steps=3", "--set", "trainer.val_every=3",
             "--set", "trainer.progress=false", "--set", "trainer.warmup_steps=1"]
    result = runner.invoke(app, ["train", str(recipe / "ndt1_tiny.yaml"), *small], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "| synth-0 | ndt1 |" in result.output and "smoothing" in result.output
    checkpoint = tmp_path / "ndt1_tiny" / "checkpoints" / "final.ckpt"
    result = runner.invoke(app, ["eval", str(checkpoint), "--out", str(tmp_path / "pred.h5")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred.h5").exists()
    result = runner.invoke(app, ["report", str(tmp_path / "ndt1_tiny")])
    assert result.exit_code == 0 and (tmp_path / "ndt1_tiny" / "report.md").exists()
    result = runner.invoke(app, [
        "transfer", str(recipe / "transfer_synthetic.yaml"), "--set", "pretrain_steps=2", "--set", "adapt_steps=1",
        "--set", "scratch_steps=1", "--set", "models=[poyo]", "--set", "calibration_trials=[2]",
        "--set", f"out_dir={tmp_path / 'transfer'}", "--set", "synthetic.n_trials=30",
    ], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "recalibrate" in result.output and (tmp_path / "transfer" / "transfer.png").exists()


def test_train_unknown_override_is_a_clear_error():
    recipe = Path(__file__).resolve().parents[1] / "configs" / "ndt1_tiny.yaml"
    result = runner.invoke(app, ["train", str(recipe), "--set", "trainer.nope=1"])
    assert result.exit_code == 2 and "unknown key" in result.output


SHARED = Path(__file__).resolve().parents[2] / "shared/data"
SHARED_FILES = sorted(
    str(p.relative_to(SHARED)) for p in SHARED.rglob("*") if p.is_file() and p.name not in ("README.md", "SHA256SUMS")
) if SHARED.exists() else []
STATED_BIN_WIDTH = {"m1_reaching/s1_data.mat": ["--bin-size", "0.05"]}  # 50 ms per the source, not in the file


@pytest.mark.skipif(not SHARED_FILES, reason="shared data folder absent")
@pytest.mark.parametrize("name", SHARED_FILES)
def test_inspect_reads_every_shared_recording(name):
    result = runner.invoke(app, ["inspect", str(SHARED / name), *STATED_BIN_WIDTH.get(name, [])], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "spikes" in result.output and "rate (Hz)" in result.output


@pytest.mark.skipif(not SHARED_FILES, reason="shared data folder absent")
def test_inspect_count_file_without_time_asks_for_the_bin_width():
    result = runner.invoke(app, ["inspect", str(SHARED / "m1_reaching/s1_data.mat")], terminal_width=200)
    assert result.exit_code == 2 and "--bin-size" in result.output


def test_synth_corpus_curate_pretrain_finetune_commands(tmp_path):
    corpus = tmp_path / "corpus"
    result = runner.invoke(app, ["synth", str(corpus), "--sessions", "6", "--groups", "2", "--units", "10-14",
                                 "--trials", "16", "--rates", "2-20"])
    assert result.exit_code == 0, result.output
    assert len(list(corpus.glob("*.h5"))) == 6 and (corpus / "corpus_config.json").exists()
    target = corpus / "g1-lor-2.h5"
    manifest = tmp_path / "curated.json"
    result = runner.invoke(app, ["curate", "--target", "g1-lor-2", "--corpus", str(corpus), "--k", "2",
                                 "--out", str(manifest), "--trials", "6"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "g1-lor-2" not in json.loads(manifest.read_text())["recordings"][0]
    recipe = Path(__file__).resolve().parents[1] / "configs" / "poyo_tiny.yaml"
    result = runner.invoke(app, [
        "pretrain", str(recipe), "--corpus", str(manifest), "--out", str(tmp_path / "pre"),
        "--set", f"trainer.out_dir={tmp_path}", "--set", "trainer.max_steps=2", "--set", "trainer.val_every=2",
        "--set", "trainer.progress=false", "--set", "trainer.warmup_steps=1", "--set", "trainer.batch_size=4",
    ], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pre" / "model.safetensors").exists() and "pretrained model in" in result.output
    result = runner.invoke(app, ["finetune", str(tmp_path / "pre"), "--data", str(target), "--mode", "head",
                                 "--trials", "3", "--set", "adapt_steps=2", "--set", "batch_size=3",
                                 "--json", str(tmp_path / "row.json")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "row.json").read_text())["condition"] == "head"
    result = runner.invoke(app, ["finetune", str(tmp_path / "pre"), "--data", str(target), "--mode", "bogus"])
    assert result.exit_code == 2 and "unknown fine-tuning mode" in result.output
