import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.data.store import read_recording, write_recording

runner = CliRunner()


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


def test_inspect_reads_nlb_file(shared_data):
    result = runner.invoke(
        app, ["inspect", str(shared_data("nlb/sub-Jenkins_ses-small_desc-test_ecephys.nwb"))], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "107" in result.output and "32,897" in result.output


def test_train_eval_report_and_transfer_commands(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "configs"
    small = ["--set", "data.synthetic.n_trials=30", "--set", "data.synthetic.n_sessions=1",
             "--set", f"trainer.out_dir={tmp_path}", "--set", "trainer.max_steps=3", "--set", "trainer.val_every=3",
             "--set", "trainer.progress=false", "--set", "trainer.warmup_steps=1"]
    result = runner.invoke(app, ["train", str(recipe / "ndt1_tiny.yaml"), *small], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert any("synth-0" in line and "ndt1" in line for line in result.output.splitlines())
    assert "smoothing" in result.output and "co-bps: " in result.output  # a drawn table with its notes
    checkpoint = tmp_path / "ndt1_tiny" / "checkpoints" / "final.ckpt"
    result = runner.invoke(app, ["eval", str(checkpoint), "--out", str(tmp_path / "pred.h5")], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pred.h5").exists()
    assert "NLB metrics (mc_maze_20" in result.output and "fp-bps" in result.output and "psth R2" in result.output
    result = runner.invoke(app, ["report", str(tmp_path / "ndt1_tiny")])
    assert result.exit_code == 0 and (tmp_path / "ndt1_tiny" / "report.md").exists()
    assert "scores read from" in result.output  # eval's scores.json, not scored a third time
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


STATED_BIN_WIDTH = {"m1_reaching/s1_data.mat": ["--bin-size", "0.05"]}  # 50 ms per the source, not in the file


def test_inspect_reads_every_shared_recording(shared_data, shared_file):
    path = shared_data(shared_file)
    result = runner.invoke(app, ["inspect", str(path), *STATED_BIN_WIDTH.get(shared_file, [])], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "spikes" in result.output and "rate (Hz)" in result.output
    assert "warning:" not in result.output  # real recordings pass the data checks


def test_inspect_count_file_without_time_asks_for_the_bin_width(shared_data):
    result = runner.invoke(app, ["inspect", str(shared_data("m1_reaching/s1_data.mat"))], terminal_width=200)
    assert result.exit_code == 2 and "--bin-size" in result.output


# ------------------------------------------------------------------ errors: one line, rc 2
RECIPE = str(Path(__file__).resolve().parents[1] / "configs" / "ndt1_tiny.yaml")
POYO = str(Path(__file__).resolve().parents[1] / "configs" / "poyo_tiny.yaml")
TINY = ["--set", "data.synthetic.n_trials=20", "--set", "data.synthetic.n_sessions=1", "--set", "trainer.max_steps=2",
        "--set", "trainer.val_every=2", "--set", "trainer.progress=false", "--set", "trainer.warmup_steps=1"]


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, str]:
    """Files for the error cases: a trained checkpoint and damaged copies, a store without behaviour, ..."""
    import dataclasses

    import torch

    from spikefm.data.synthetic import SyntheticConfig, generate

    root = tmp_path_factory.mktemp("bad")
    runs = root / "runs"
    result = runner.invoke(app, ["train", RECIPE, *TINY, "--set", f"trainer.out_dir={runs}"])
    assert result.exit_code == 0, result.output
    checkpoint = runs / "ndt1_tiny" / "checkpoints" / "final.ckpt"
    (root / "random.ckpt").write_bytes(np.random.default_rng(0).bytes(4096))
    (root / "truncated.ckpt").write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    torch.save({"state_dict": {"weight": torch.zeros(3)}, "epoch": 1}, root / "foreign.ckpt")
    (root / "broken.yaml").write_text("model:\n  name: ndt1\n trainer: [\n")
    (root / "a_file").write_text("not a folder")
    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(10, 10), n_trials=20, seed=0)).recordings[0]
    write_recording(dataclasses.replace(rec, behavior={}), root / "no_behaviour.h5")
    return {"root": str(root), "ckpt": str(checkpoint), "runs": str(runs)}


ABSENT = "tpu" if __import__("torch").cuda.is_available() else "gpu"  # an accelerator this machine lacks
ERROR_CASES = {  # case: (command line, fragments the one error line must contain)
    "unknown model": (["train", RECIPE, "--set", "model.name=ndt9"], ["model.name", "ndt9", "available:", "ndt1"]),
    "unknown preset": (["train", RECIPE, "--set", "model.preset=huge"], ["model.preset", "huge", "presets:", "tiny"]),
    "model.overrides typo": (["train", RECIPE, "--set", "model.overrides.dimm=8"],
                             ["model.overrides", "dimm", "known:"]),
    "tokenizer typo": (["train", RECIPE, "--set", "tokenizer.bin_sizee=0.02"], ["tokenizer", "bin_sizee", "bin_size"]),
    "YAML syntax": (["train", "{root}/broken.yaml"], ["broken.yaml", "YAML syntax error at line 3"]),
    "missing recipe": (["train", "{root}/nope.yaml"], ["nope.yaml", "not found"]),
    "wrong type": (["train", RECIPE, "--set", "trainer.max_steps=many"],
                   ["trainer.max_steps", "valid integer", "many"]),
    "missing data path": (["train", RECIPE, "--set", "data.paths={root}/missing.h5"], ["data.paths", "missing.h5"]),
    "session not present": (["train", RECIPE, *TINY, "--set", "data.sessions=synth-7"],
                            ["data.sessions", "synth-7", "synth-0"]),
    "POYO without behaviour": (["train", POYO, *TINY, "--set", "data.paths={root}/no_behaviour.h5",
                                "--set", "trainer.out_dir={root}/runs"], ["POYO", "hand_vel", "behavior_key"]),
    "unwritable out_dir": (["train", RECIPE, "--set", "trainer.out_dir={root}/a_file/runs"],
                           ["trainer.out_dir", "a_file/runs", "Not a directory"]),
    "accelerator absent": (["train", RECIPE, "--set", f"trainer.accelerator={ABSENT}"],
                           ["trainer.accelerator", ABSENT]),
    "random checkpoint": (["eval", "{root}/random.ckpt"], ["random.ckpt", "not a readable checkpoint"]),
    "truncated checkpoint": (["eval", "{root}/truncated.ckpt"], ["truncated.ckpt", "not a readable checkpoint"]),
    "foreign checkpoint": (["eval", "{root}/foreign.ckpt"], ["foreign.ckpt", "not a `spikefm train` checkpoint"]),
    "missing checkpoint": (["eval", "{root}/none.ckpt"], ["none.ckpt", "not found"]),
    "bogus split": (["eval", "{ckpt}", "--split", "bogus"], ["--split", "bogus", "test", "train", "val"]),
    "unwritable eval --out": (["eval", "{ckpt}", "--out", "{root}/a_file/pred.h5"], ["--out", "a_file"]),
    "eval --out is a folder": (["eval", "{ckpt}", "--out", "{root}"], ["--out", "is a folder"]),
    "inspect --window 0": (["inspect", "{root}/no_behaviour.h5", "--tokens", "--window", "0"], ["--window", "> 0"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_with_rc_2(bad_inputs, case, monkeypatch):
    import spikefm.train.fit as fit_module

    def no_training(*args, **kwargs):
        raise AssertionError("the error must be raised before training starts")

    monkeypatch.setattr(fit_module.L.Trainer, "fit", no_training)
    monkeypatch.setattr("spikefm.eval.report.score_table", no_training)  # and before any scoring
    args, fragments = ERROR_CASES[case]
    result = runner.invoke(app, [a.format(**bad_inputs) for a in args], terminal_width=300)
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("warning:")]
    assert result.exit_code == 2, result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment.format(**bad_inputs) in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(where):
    args = ["train", RECIPE, "--set", "model.name=ndt9"]
    result = runner.invoke(app, ["--debug", *args] if where == "before" else [*args, "--debug"])
    assert result.exit_code == 1 and "error:" not in result.output
    assert isinstance(result.exception, Exception) and "ndt9" in str(result.exception)


def test_data_warnings_print_as_one_line(tmp_path):
    from spikefm.data.recording import Recording, SpikeTrains, Units

    times = np.append(np.linspace(0.0, 50.0, 400), 1e7)  # one spike at 1e7 s
    rec = Recording(spikes=SpikeTrains(times, np.arange(401) % 4), units=Units(ids=list("abcd")), session="s")
    result = runner.invoke(app, ["inspect", str(write_recording(rec, tmp_path / "far.h5"))], terminal_width=300)
    assert result.exit_code == 0, result.output
    (warning,) = [line for line in result.output.splitlines() if line.startswith("warning:")]
    assert "far.h5" in warning and "1e+07" in warning


# --- the first hour (issue 17, items 12 and 13) ------------------------------------------------------------------


def test_version_option():
    from spikefm import __version__

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"spikefm {__version__}"


def test_synth_says_how_to_train_on_its_files(tmp_path):
    result = runner.invoke(app, ["synth", str(tmp_path), "--sessions", "1", "--units", "8", "--trials", "10"])
    assert result.exit_code == 0 and f"--data {tmp_path / '*.h5'}" in result.output


def test_inspect_tokens_fits_100_columns_and_explains_its_columns(synth_dir):
    result = runner.invoke(app, ["inspect", str(synth_dir / "synth-0.h5"), "--tokens"], terminal_width=100)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert any("event (Neuroformer)" in line for line in lines)  # no name cut or wrapped
    for header in ("tokens/s", "zeros", "values/token", "length p5/p50/p95/max"):
        assert any(line.startswith(f"{header}: ") for line in lines), header


def test_inspect_plot_takes_start_and_length(synth_dir, tmp_path):
    png = tmp_path / "raster.png"
    args = ["inspect", str(synth_dir / "synth-0.h5"), "--plot", str(png), "--start", "2", "--length", "3"]
    result = runner.invoke(app, args, terminal_width=100)
    assert result.exit_code == 0, result.output
    assert "raster of [2.00, 5.00) s" in result.output and png.stat().st_size > 1000
    result = runner.invoke(app, [*args[:4], "--start", "1e6"], terminal_width=100)
    assert result.exit_code == 2 and "outside the recording" in result.output


def test_inspect_plot_of_hippocampus_draws_spikes(tmp_path, shared_data):
    # Tracking starts ~60 s before the first spike: the default window must not be empty.
    wmaze = shared_data("hippocampus/nelpy_wmaze")
    args = ["inspect", str(wmaze), "--plot", str(tmp_path / "r.png")]
    result = runner.invoke(app, args, terminal_width=100)
    assert result.exit_code == 0, result.output
    t0 = float(result.output.split("raster of [")[1].split(",")[0])
    from spikefm.data.store import load

    assert load(wmaze).slice(t0, t0 + 10.0).n_spikes > 1000


def test_train_takes_data_files(synth_dir, tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "configs" / "poyo_tiny.yaml"
    files = sorted(str(f) for f in synth_dir.glob("*.h5"))
    small = ["--set", f"trainer.out_dir={tmp_path}", "--set", "trainer.max_steps=2", "--set", "trainer.val_every=2",
             "--set", "trainer.progress=false", "--set", "trainer.warmup_steps=1"]
    result = runner.invoke(app, ["train", str(recipe), "--data", *files, *small], terminal_width=100)  # as a glob expands
    assert result.exit_code == 0, result.output
    recipe_json = json.loads((tmp_path / "poyo_tiny" / "recipe.json").read_text())
    assert recipe_json["data"]["paths"] == files
    assert "synth-1" in result.output and "mean of 2" in result.output
    saved = json.loads((tmp_path / "poyo_tiny" / "scores.json").read_text())
    assert saved["data"] == files and {row["session"] for row in saved["rows"]} == {"synth-0", "synth-1"}


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


def test_bench_logs_keep_bracketed_row_names() -> None:
    """Rich read ``[identity=table]`` in an ablation row's name as a markup tag and dropped it from the log."""
    from spikefm.cli import _plain, console

    with console.capture() as captured:
        _plain("select unified [identity=table] on m1 (6 trials)")
    assert "unified [identity=table] on m1" in captured.get()
