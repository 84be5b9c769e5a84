import h5py
import numpy as np
import pytest

from spikefm.eval.nlb_io import write_submission, write_synthetic_targets
from spikefm.eval.report import score_table, write_report
from spikefm.train.config import RunConfig
from spikefm.train.fit import fit


@pytest.fixture(scope="module")
def ndt1_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    config = RunConfig.from_dict({
        "name": "ndt1_small", "model": {"name": "ndt1"},
        "data": {"synthetic": {"n_sessions": 1, "units_per_session": [16, 20], "n_trials": 30}},
        "trainer": {"max_steps": 4, "batch_size": 8, "val_every": 2, "warmup_steps": 1, "out_dir": str(out),
                    "progress": False},
    })
    return config, fit(config)


def test_score_table_has_model_baselines_and_oracle(ndt1_run):
    config, result = ndt1_run
    table = score_table(result.module, config, result.recordings, dataset=result.dataset)
    models = {model for _, model in table.rows}
    assert models == {"ndt1", "smoothing", "ridge", "oracle"}
    oracle = table.rows[("synth-0", "oracle")]["co-bps"]
    smoothing = table.rows[("synth-0", "smoothing")]["co-bps"]
    assert oracle > smoothing  # the truth beats the baseline on the same bins
    assert "| synth-0 | ndt1 |" in table.markdown()


def test_write_report_makes_markdown_and_figures(ndt1_run):
    _, result = ndt1_run
    report = write_report(result.run_dir)
    text = report.read_text()
    assert "## Scores" in text and "oracle" in text and "![rates](rates.png)" in text
    assert (result.run_dir / "rates.png").stat().st_size > 1000
    assert (result.run_dir / "scores.json").exists()


def test_submission_has_nlb_keys_with_heldin_heldout_split(ndt1_run, tmp_path):
    config, result = ndt1_run
    path = write_submission(result.module, config, result.recordings, tmp_path / "pred.h5")
    rec = result.recordings[0]
    n_out = int(rec.units.heldout.sum())
    with h5py.File(path) as handle:
        group = handle["synth-0"]
        assert set(group) == {"train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout"}
        assert group["eval_rates_heldout"].shape[-1] == n_out
        assert group["eval_rates_heldin"].shape[-1] == rec.n_units - n_out
        assert np.all(group["eval_rates_heldout"][()] > 0)


def test_synthetic_targets_match_the_recording(ndt1_run, tmp_path):
    _, result = ndt1_run
    (path,) = write_synthetic_targets(result.dataset, tmp_path)
    rec = result.recordings[0]
    n_test = int(np.sum(rec.trials.columns["split"] == "test"))
    with h5py.File(path) as handle:
        group = handle["synth-0"]
        assert group["eval_spikes_heldout"].shape == (n_test, 50, int(rec.units.heldout.sum()))
        assert group["eval_true_rates_heldout"].shape == group["eval_spikes_heldout"].shape
        assert group["train_behavior"].shape[-1] == 2


# --- what a reader sees: score tables, saved scores, figures (issue 17, item 13) ---------------------------------

import io  # noqa: E402
import json  # noqa: E402

from rich.console import Console  # noqa: E402

import spikefm.eval.plots as plots  # noqa: E402
from spikefm.data.recording import Recording, SpikeTrains, TimeSeries, Units  # noqa: E402
from spikefm.data.synthetic import SyntheticConfig, generate  # noqa: E402
from spikefm.eval.evaluate import Predictions  # noqa: E402
from spikefm.eval.report import ScoreTable, load_scores, prediction_figures, save_scores  # noqa: E402


def _two_session_table() -> ScoreTable:
    rows = {}
    for session, (model, smoothing, oracle) in {"s0": (0.2, 0.1, 0.4), "s1": (0.3, 0.2, 0.5)}.items():
        rows[(session, "ndt1")] = {"co-bps": model}
        rows[(session, "smoothing")] = {"co-bps": smoothing}
        rows[(session, "ridge")] = {"vel R2": 0.6}  # a decoder baseline: no co-bps, so not shown for NDT1
        rows[(session, "oracle")] = {"co-bps": oracle, "vel R2": 0.9}
    return ScoreTable(rows=rows, model="ndt1")


def _render(table: ScoreTable, width: int = 100) -> str:
    console = Console(file=io.StringIO(), width=width, force_terminal=False, color_system=None)
    console.print(table.rich())
    return console.file.getvalue()


def test_score_table_shows_the_models_metrics_means_and_share_of_oracle():
    table = _two_session_table()
    assert table.metrics() == ["co-bps"]
    shown = {(session, name): cells for session, name, cells in table.shown()}
    assert ("s0", "ridge") not in shown  # the ridge row carries no co-bps: it does not apply to NDT1
    assert shown[("s0", "ndt1")] == {"co-bps": "0.200 (50%)"}
    assert shown[("mean of 2", "ndt1")] == {"co-bps": "0.250 (56%)"}  # 0.25 / mean oracle 0.45
    assert shown[("mean of 2", "oracle")] == {"co-bps": "0.450"}
    labels = [label for label, _ in table.notes()]
    assert labels == ["co-bps", "smoothing", "oracle", "(NN%)"]
    markdown = table.markdown()
    assert "| s0 | ndt1 | 0.200 (50%) |" in markdown and "ridge" not in markdown and "vel R2" not in markdown


def test_score_table_renders_as_a_table_with_notes_within_100_columns():
    text = _render(_two_session_table())
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert not any(line.startswith("|") for line in lines)  # a drawn table, not raw markdown
    assert any("mean of 2" in line and "0.250 (56%)" in line for line in lines)
    assert any(line.startswith("co-bps: ") for line in lines) and any(line.startswith("smoothing: ") for line in lines)


def test_score_table_without_oracle_has_no_share_and_a_decoder_keeps_its_baseline():
    rows = {("s0", "poyo"): {"vel R2": 0.8}, ("s0", "ridge"): {"vel R2": 0.5}, ("s0", "smoothing"): {"co-bps": 0.1}}
    table = ScoreTable(rows=rows, model="poyo")
    assert [(s, n) for s, n, _ in table.shown()] == [("s0", "poyo"), ("s0", "ridge")]  # one session: no mean row
    assert "%" not in _render(table) and [label for label, _ in table.notes()] == ["vel R2", "ridge"]


def test_saved_scores_round_trip_and_go_stale(tmp_path):
    checkpoint = tmp_path / "final.ckpt"
    checkpoint.write_bytes(b"weights v1")
    table = _two_session_table()
    save_scores(table, tmp_path, checkpoint=checkpoint, data=["a.h5"])
    loaded = load_scores(tmp_path, checkpoint=checkpoint, data=["a.h5"], split="test")
    assert loaded is not None and loaded.rows == table.rows and loaded.model == "ndt1"
    assert load_scores(tmp_path, checkpoint=checkpoint, data=["a.h5"], split="val") is None
    assert load_scores(tmp_path, checkpoint=checkpoint, data=["b.h5"], split="test") is None
    checkpoint.write_bytes(b"weights v2")  # retrained: the saved scores are of other weights
    assert load_scores(tmp_path, checkpoint=checkpoint, data=["a.h5"], split="test") is None
    (tmp_path / "scores.json").write_text("[]")  # an old-format file is scored again, not an error
    assert load_scores(tmp_path, checkpoint=checkpoint, data=["a.h5"], split="test") is None


def test_report_reuses_saved_scores_instead_of_scoring_again(ndt1_run, monkeypatch):
    config, result = ndt1_run
    table = score_table(result.module, config, result.recordings, dataset=result.dataset)
    table.rows[("synth-0", "ndt1")]["co-bps"] = 12.345  # a value only the saved file holds
    save_scores(table, result.run_dir, checkpoint=result.checkpoint, data=config.data.paths)

    def fail(*args, **kwargs):
        raise AssertionError("write_report scored again although scores.json holds this checkpoint's scores")

    monkeypatch.setattr("spikefm.eval.report.score_table", fail)
    messages = []
    text = write_report(result.run_dir, log=messages.append).read_text()
    assert "12.345" in text and "scores read from" in messages[0]
    assert json.loads((result.run_dir / "scores.json").read_text())["rows"][0]["co-bps"] == 12.345


@pytest.fixture
def captured_figures(monkeypatch):
    figures = []

    def keep(fig, out):
        figures.append(fig)
        return plots.Path(out)

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def test_loss_curve_marks_a_single_validation_point(captured_figures):
    plots.plot_curves({"train/loss": (np.arange(100), np.linspace(1, 0, 100)), "val/loss": (np.array([99]),
                                                                                            np.array([0.5]))}, "x.png")
    train, val = captured_figures[0].axes[0].lines
    assert train.get_marker() in ("None", None, "") and val.get_marker() == "o"


def test_behaviour_figure_names_axes_and_overlays_the_ridge_decoder(tmp_path, captured_figures):
    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(16, 16), n_trials=30, seed=0)).recordings[0]
    start = float(rec.trials.start[rec.trials.columns["split"] == "test"][0])
    times = np.arange(0.0, 1.0, 0.1)
    true = np.stack([np.interp(start + times, rec.behavior["hand_vel"].timestamps, v)
                     for v in rec.behavior["hand_vel"].values.T], -1)[None]
    predictions = Predictions(rates=None, counts=None, heldout=None, behavior=true + 0.1, behavior_true=true,
                              query_mask=np.ones((1, times.size), bool), starts=np.array([start]),
                              query_times=times[None])
    lines = prediction_figures(tmp_path, rec.session, predictions, None, 1.0, recording=rec)
    assert "![behaviour](behavior.png)" in lines
    axes = captured_figures[0].axes
    assert [ax.get_ylabel() for ax in axes] == ["x velocity", "y velocity"]
    assert [line.get_label() for line in axes[0].lines] == ["true", "ridge", "predicted"]


def test_rates_figure_is_in_hz_with_the_smoothing_baseline(ndt1_run, tmp_path, captured_figures):
    config, result = ndt1_run
    table = score_table(result.module, config, result.recordings, dataset=result.dataset)
    rec = result.recordings[0]
    prediction_figures(tmp_path, rec.session, table.predictions[rec.session], result.dataset, 1.0, recording=rec)
    axes = captured_figures[0].axes
    assert axes[0].get_ylabel().endswith("(Hz)")
    assert "smoothing" in [line.get_label() for line in axes[0].lines]


def test_behavior_labels_read_names_and_axes():
    assert plots.behavior_labels("hand_vel", (), 3) == ["x velocity", "y velocity", "z velocity"]
    assert plots.behavior_labels("cursor_pos", ("x", "y"), 2) == ["x position", "y position"]
    assert plots.behavior_labels("emg", (), 4) == ["emg 0", "emg 1", "emg 2", "emg 3"]


def test_raster_window_starts_where_the_spikes_are():
    # Tracking starts at 0 s but the first spike is at 60 s (as in the hippocampus files).
    rng = np.random.default_rng(0)
    times = np.sort(rng.uniform(60.0, 200.0, 2000))
    rec = Recording(
        spikes=SpikeTrains(times, rng.integers(0, 5, times.size)), units=Units(ids=[str(i) for i in range(5)]),
        behavior={"position": TimeSeries(np.arange(0.0, 200.0, 0.5), np.zeros((400, 2)), ("x", "y"))},
        start=0.0, end=200.0,
    )
    t0 = plots.spike_window(rec, 10.0)
    assert 50.0 <= t0 <= 60.0 and rec.slice(t0, t0 + 10.0).n_spikes > 100
