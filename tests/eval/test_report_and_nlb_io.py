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
    # NDT1 (tiny) reads its whole window: baselines of both forms, each tuned on the val trials
    assert models == {"ndt1", "smoothing", "smoothing causal", "wiener causal", "wiener acausal", "kalman", "oracle"}
    assert set(table.rows[("synth-0", "kalman")]) == {"decode R2"}
    assert set(table.rows[("synth-0", "oracle")]) == {"co-bps", "vel R2"}
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


def test_submission_is_in_nlb_layout_with_heldin_heldout_and_forward(ndt1_run, tmp_path):
    config, result = ndt1_run
    path = write_submission(result.module, config, result.recordings, tmp_path / "pred.h5")
    rec = result.recordings[0]
    n_out = int(rec.units.heldout.sum())
    split = rec.trials.columns["split"]
    with h5py.File(path) as handle:
        assert list(handle) == ["mc_maze_20"]  # NLB's dataset group at 20 ms, not the session id
        group = handle["mc_maze_20"]
        assert set(group) == {"train_rates_heldin", "train_rates_heldout", "eval_rates_heldin", "eval_rates_heldout",
                              "eval_rates_heldin_forward", "eval_rates_heldout_forward"}
        assert group["eval_rates_heldout"].shape == (int(np.sum(split == "test")), 35, n_out)  # -250..450 ms
        assert group["train_rates_heldin"].shape == (int(np.sum(split != "test")), 35, rec.n_units - n_out)
        assert group["eval_rates_heldout_forward"].shape[1:] == (10, n_out)  # 200 ms forward
        assert np.all(group["eval_rates_heldout"][()] > 0)


def test_synthetic_targets_are_in_nlb_layout(ndt1_run, tmp_path):
    _, result = ndt1_run
    (path,) = write_synthetic_targets(result.dataset, tmp_path)
    rec = result.recordings[0]
    n_test = int(np.sum(rec.trials.columns["split"] == "test"))
    with h5py.File(path) as handle:
        group = handle["mc_maze_20"]
        assert group["eval_spikes_heldout"].shape == (n_test, 35, int(rec.units.heldout.sum()))
        assert group["eval_true_rates_heldout"].shape == group["eval_spikes_heldout"].shape
        assert group["train_behavior"].shape[-1] == 2
        assert group["psth"].shape == (8, 35, rec.n_units)  # 8 conditions, held-in and held-out units
        # One array of eval-trial positions per condition, together covering every eval trial once.
        members = np.concatenate(list(group["eval_cond_idx"][()]))
        assert sorted(members.tolist()) == list(range(n_test))


def test_nlb_tools_evaluate_returns_the_numbers_spikefm_prints(ndt1_run, tmp_path):
    evaluation = pytest.importorskip("nlb_tools.evaluation")  # pip install --no-deps nlb-tools (+ scikit-learn)
    from spikefm.eval.nlb_io import nlb_cli_report, nlb_report, write_nlb_h5

    config, result = ndt1_run
    groups, scores, unscored = nlb_report(result.module, config, result.recordings)
    assert not unscored
    submission = write_nlb_h5(groups, tmp_path / "sub.h5")
    (targets,) = write_synthetic_targets(result.dataset, tmp_path)
    (official,) = evaluation.evaluate(str(targets), str(submission))
    ours = scores["synth-0"]
    assert set(ours) == {"co-bps", "vel R2", "psth R2", "fp-bps"}
    assert set(official["mc_maze_20_split"]) == set(ours)
    for metric, value in official["mc_maze_20_split"].items():
        assert float(value) == pytest.approx(ours[metric], rel=1e-9, abs=1e-9), metric
    printed = nlb_cli_report(result.module, config, result.recordings)
    assert f"{ours['co-bps']:.4f}" in printed and f"{ours['fp-bps']:.4f}" in printed


def test_forward_input_holds_only_the_window_and_eval_input_no_heldout_spikes(ndt1_run):
    from spikefm.eval.nlb_io import _stitched
    from spikefm.eval.nlb_tensors import NLB_DATASETS, nlb_counts, trial_rows

    _, result = ndt1_run
    rec, spec = result.recordings[0], NLB_DATASETS["mc_maze"]
    rows = trial_rows(rec, ["test"], spec)
    stitched = _stitched(rec, rows, spec, 20, seen_ms=700, total_ms=900, drop_heldout=True)
    counts = nlb_counts(rec, rows, spec, 20)  # [K, 35, N]
    held = rec.units.heldout
    assert stitched.n_spikes == int(counts[..., ~held].sum())  # the window's held-in spikes, nothing else
    assert not held[stitched.spikes.units].any()
    period = stitched.trials.start[1] - stitched.trials.start[0]
    offsets = stitched.spikes.times - np.floor(stitched.spikes.times / period) * period
    assert offsets.max() < 0.7  # nothing in the forward 200 ms the model is asked to predict


def test_infer_dataset_from_nlb_file_names_or_a_clear_error(ndt1_run):
    from dataclasses import replace

    from spikefm.data.recording import DataError
    from spikefm.eval.nlb_tensors import infer_dataset

    rec = result_rec = ndt1_run[1].recordings[0]
    assert infer_dataset([rec]) == "mc_maze"  # synthetic sessions are cut like MC_Maze
    plain = replace(result_rec, metadata={})
    assert infer_dataset([replace(plain, source="x/sub-Jenkins_ses-small_desc-train_ecephys.nwb")]) == "mc_maze_small"
    assert infer_dataset([replace(plain, source="x/sub-Han_desc-train_ecephys.nwb")]) == "area2_bump"
    with pytest.raises(DataError, match="--nlb-dataset"):
        infer_dataset([replace(plain, source="mine.nwb")])




def test_nlb_windows_and_bins_equal_nlb_tools_on_mc_maze_small(shared_data):
    nlb_file = shared_data("nlb/sub-Jenkins_ses-small_desc-test_ecephys.nwb")
    pytest.importorskip("nlb_tools.make_tensors")
    from nlb_tools.make_tensors import make_eval_input_tensors
    from nlb_tools.nwb_interface import NWBDataset

    from spikefm.data.nwb import read_nwb
    from spikefm.eval.nlb_tensors import NLB_DATASETS, infer_dataset, nlb_counts, trial_rows

    # nlb_tools' own resampling breaks under pandas >= 3 (read-only arrays), so take its 1 ms tensors and sum.
    official = make_eval_input_tensors(NWBDataset(str(nlb_file)), "mc_maze_small", trial_split="test",
                                       save_file=False, return_dict=True)["eval_spikes_heldin"]
    rec = read_nwb(nlb_file)
    spec = NLB_DATASETS[infer_dataset([rec])]
    rows = trial_rows(rec, ["test"], spec)
    for bin_ms in (5, 20):
        ours = nlb_counts(rec, rows, spec, bin_ms)
        expected = official.reshape(official.shape[0], -1, bin_ms, official.shape[2]).sum(2)
        np.testing.assert_array_equal(ours, expected)
    assert ours.sum() == rec.n_spikes == 32897


def test_a_test_file_without_heldout_units_takes_them_from_the_train_file(ndt1_run):
    from dataclasses import replace

    from spikefm.data.recording import SpikeTrains
    from spikefm.eval.nlb_io import _complete_units

    train = ndt1_run[1].recordings[0]
    keep = ~train.units.heldout
    spikes = keep[train.spikes.units]
    new_index = np.cumsum(keep) - 1
    test = replace(train, units=train.units.select(keep), session="small",
                   spikes=SpikeTrains(train.spikes.times[spikes], new_index[train.spikes.units[spikes]]))
    _, completed = _complete_units([train, test])
    assert completed.session == train.session and completed.n_units == train.n_units
    np.testing.assert_array_equal(completed.spike_counts()[keep], test.spike_counts())
    assert completed.spike_counts()[~keep].sum() == 0


def test_a_model_fixed_to_its_trained_length_gives_no_forward_keys_and_says_why():
    from spikefm.data.synthetic import SyntheticConfig, generate
    from spikefm.eval.nlb_io import submission_arrays
    from spikefm.models.registry import build_config, get_spec

    rec = generate(SyntheticConfig(n_sessions=1, units_per_session=(8, 8), n_trials=10)).recordings[0]
    spec = get_spec("stndt")
    config = build_config("stndt", "tiny", n_bins=35)  # NLB's 700 ms eval window at 20 ms
    model = spec.model_cls(config, **spec.sizes_from_data([rec], config))
    with pytest.warns(UserWarning, match="no forward prediction"):
        arrays = submission_arrays(model, spec.make_tokenizer(config), rec, dataset="mc_maze", bin_ms=20)
    assert "eval_rates_heldout" in arrays and "eval_rates_heldout_forward" not in arrays




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
    rows = {("s0", "poyo"): {"decode R2": 0.8}, ("s0", "wiener causal"): {"decode R2": 0.5},
            ("s0", "smoothing"): {"co-bps": 0.1}}
    table = ScoreTable(rows=rows, model="poyo")
    assert [(s, n) for s, n, _ in table.shown()] == [("s0", "poyo"), ("s0", "wiener causal")]  # one session: no mean
    assert "%" not in _render(table) and [label for label, _ in table.notes()] == ["decode R2", "wiener causal"]


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
