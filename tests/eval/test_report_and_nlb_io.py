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
