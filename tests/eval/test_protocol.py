"""The protocol: sealed test split, selection on val only, seeds, intervals, cache, and the bench command."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.data.binned import from_binned
from spikefm.data.recording import DataError, Recording
from spikefm.data.splits import contiguous_blocks
from spikefm.data.store import write_recording
from spikefm.eval.bench import SyntheticSettings
from spikefm.eval.cache import ResultCache
from spikefm.eval.baselines import make_baseline
from spikefm.eval.candidates import BaselineCandidate, Task, TrialScores, task_arrays
from spikefm.eval.intervals import bootstrap, compare
from spikefm.eval.protocol import Budget, DataSpec, run, score
from spikefm.eval.sealed import SealedTestError, seal

DECODE = Task("decode R2", window=1.0, bin_size=0.02, behavior_key="hand_vel")
COBPS = Task("co-bps", window=1.0, bin_size=0.02)
BUDGET = Budget(trials=3, seeds=2, max_steps=4, bootstrap=50)


def wiener(causal: bool = True) -> BaselineCandidate:
    extra = {} if causal else {"window_bins": 50}
    return BaselineCandidate(make_baseline("wiener causal" if causal else "wiener acausal", **extra), DECODE)


@pytest.fixture(scope="module")
def synth() -> Recording:
    return SyntheticSettings(n_trials=30, units=(16, 16)).draw(0)


def _test_intervals(rec: Recording) -> tuple[np.ndarray, np.ndarray]:
    test = rec.trials.columns["split"] == "test"
    return rec.trials.start[test], rec.trials.end[test]


def _touches_test(rec: Recording, intervals: tuple[np.ndarray, np.ndarray]) -> bool:
    start, end = intervals
    in_test = lambda t: np.any((t[:, None] >= start) & (t[:, None] < end), axis=1)  # noqa: E731
    labels = rec.trials.columns["split"].astype(str)
    behaviour = any(in_test(s.timestamps).any() for s in rec.behavior.values())
    return bool((labels == "test").any() or in_test(rec.spikes.times).any() or behaviour)


# ----------------------------------------------------------------------------- sealing
def test_seal_cuts_test_data_out_and_opens_once_after_release(synth: Recording) -> None:
    dev, sealed = seal(synth, name="synth")
    assert not _touches_test(dev, _test_intervals(synth))
    assert dev.n_spikes < synth.n_spikes
    assert set(dev.trials.columns["split"].tolist()) == {"train", "val"}
    with pytest.raises(SealedTestError, match="sealed until selection has finished"):
        sealed.open()
    sealed.release()
    assert sealed.open() is synth
    with pytest.raises(SealedTestError, match="already read once"):
        sealed.open()


def test_seal_needs_all_three_splits() -> None:
    rec = contiguous_blocks(from_binned(np.ones((100, 2), int), 0.1), block=1.0,
                            fractions={"train": 0.8, "val": 0.2})
    with pytest.raises(DataError, match="no trials in split"):
        seal(rec)


@dataclass
class Spy:
    """Wraps a candidate and records every recording each step receives, in call order."""

    inner: Any
    calls: list[tuple[str, Recording]] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def fit(self, dev, params, seed, report=None):
        self.calls.append(("fit", dev))
        return self.inner.fit(dev, params, seed, report)

    def validate(self, fitted, dev):
        self.calls.append(("validate", dev))
        return self.inner.validate(fitted, dev)

    def predict(self, fitted, rec):
        self.calls.append(("predict", rec))
        return self.inner.predict(fitted, rec)


def test_selection_and_training_never_receive_test_data(synth: Recording) -> None:
    """Fails if any search trial, seed fit or validation is handed a recording that holds test data."""
    spies = [Spy(wiener()), Spy(BaselineCandidate(make_baseline("smoothing"), COBPS))]
    spec = DataSpec("synth-0", synth)
    result = run("t", spies, select_on=spec, score_on=[spec], budget=BUDGET, log=lambda *_: None)
    test = _test_intervals(synth)
    for spy in spies:
        steps = [step for step, _ in spy.calls]
        first_predict = steps.index("predict")
        assert "fit" not in steps[first_predict:] and "validate" not in steps[first_predict:]
        assert not any(_touches_test(rec, test) for step, rec in spy.calls if step != "predict")
        assert all(rec is synth for step, rec in spy.calls if step == "predict")
    assert {row["name"] for row in result.rows} == {"wiener causal", "smoothing"}


def test_a_candidate_reaching_for_test_data_during_selection_fails(synth: Recording) -> None:
    dev, sealed = seal(synth)
    with pytest.raises(DataError, match="no trials in split 'test'"):
        task_arrays(DECODE, dev, "test")  # the development recording has no test trials to read

    class Cheat(BaselineCandidate):
        def fit(self, dev, params, seed, report=None):
            sealed.open()  # a fit that tries the sealed test before the final scoring step
            return super().fit(dev, params, seed, report)

    cheat = Cheat(make_baseline("wiener causal"), DECODE)
    with pytest.raises(SealedTestError):
        score([cheat], {"wiener causal": {"lags": 2, "alpha": 1.0}}, dev, sealed, BUDGET)


def test_sealed_test_is_read_once_for_all_candidates(synth: Recording, monkeypatch) -> None:
    dev, sealed = seal(synth)
    opened = []
    original = sealed.open
    monkeypatch.setattr(sealed, "open", lambda: opened.append(1) or original())
    candidates = [wiener(), wiener(causal=False)]
    params = {"wiener causal": {"lags": 2, "alpha": 1.0}, "wiener acausal": {"lags": 2, "alpha": 1.0, "leads": 1}}
    scored = score(candidates, params, dev, sealed, BUDGET)
    assert opened == [1] and set(scored) == set(params)


# ----------------------------------------------------------------------------- intervals, cache, features
def test_identical_rows_never_beat_each_other() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=(300, 2))
    row = [[TrialScores("decode R2", y + rng.normal(size=y.shape), y, np.repeat(np.arange(30), 10), 30)]]
    reps = bootstrap({"a": row, "b": row}, n_boot=100)
    result = compare(reps["a"], reps["b"])
    assert result["difference"] == 0 and not result["beats"]


def test_bootstrap_rejects_rows_on_different_trials() -> None:
    y = np.zeros((20, 1))
    a = [[TrialScores("decode R2", y, y, np.repeat(np.arange(5), 4), 5)]]
    b = [[TrialScores("decode R2", y[:12], y[:12], np.repeat(np.arange(3), 4), 3)]]
    with pytest.raises(ValueError, match="test trials per dataset"):
        bootstrap({"a": a, "b": b}, n_boot=10)


def test_trial_scores_resample_whole_trials() -> None:
    pred = np.array([[0.0], [1.0], [2.0], [3.0]])
    scores = TrialScores("decode R2", pred, pred + np.array([[0.0], [0.0], [1.0], [1.0]]), np.array([0, 0, 1, 1]), 2)
    assert scores.score(np.array([0, 0])) == 1.0  # trial 0 twice: perfect
    assert scores.score(np.array([1])) < 1.0


def test_cache_resumes_without_refitting(synth: Recording, tmp_path: Path) -> None:
    spec = DataSpec("synth-0", synth)
    first = Spy(wiener())
    a = run("t", [first], select_on=spec, score_on=[spec], budget=BUDGET, cache=ResultCache(tmp_path),
            log=lambda *_: None)
    again = Spy(wiener())
    b = run("t", [again], select_on=spec, score_on=[spec], budget=BUDGET, cache=ResultCache(tmp_path),
            log=lambda *_: None)
    assert first.calls and not again.calls  # everything came from the cache
    assert a.rows[0]["score"] == b.rows[0]["score"] and a.rows[0]["chosen_config"] == b.rows[0]["chosen_config"]


# ----------------------------------------------------------------------------- the command
REQUIRED = {"data", "split_sizes", "search", "chosen_config", "seeds", "per_seed_scores", "interval", "score",
            "wall_seconds", "cpu_hours", "information", "causal"}


def _check_rows(payload: dict) -> None:
    assert payload["environment"]["commit"] and payload["environment"]["cpu"] is not None
    for row in payload["rows"]:
        assert REQUIRED - {"split_sizes"} <= set(row)
        assert all("split_sizes" in d for d in row["data"])
        lo, hi = row["interval"]
        assert lo <= hi and np.isfinite([lo, hi]).all()
        assert row["search"]["budget"]["trials"] == payload["budget"]["trials"]


def test_bench_quick_synthetic_end_to_end(tmp_path: Path) -> None:
    """`spikefm bench synthetic --quick`: select on draw 0, freeze, score on a fresh draw (models and baselines)."""
    result = CliRunner().invoke(app, ["bench", "synthetic", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "synthetic_quick.json").read_text())
    _check_rows(payload)
    names = {row["name"] for row in payload["rows"]}
    assert names == {"smoothing", "smoothing causal", "ndt1", "wiener causal", "wiener acausal", "kalman", "poyo"}
    assert {row["data"][0]["name"] for row in payload["rows"]} == {"synth-1001"}
    assert {row["selected_on"]["data"] for row in payload["rows"]} == {"synth-0"}
    frozen = json.loads((tmp_path / "synthetic_frozen_recipes.json").read_text())
    assert {r["name"]: r["chosen_config"] for r in payload["rows"]} == frozen["recipes"]
    models = [row for row in payload["rows"] if row["role"] == "model"]
    assert all(len(row["seeds"]) == 2 for row in models)
    assert {(c["model"], c["baseline"]) for c in payload["comparisons"]} == {
        ("ndt1", "smoothing"), ("ndt1", "smoothing causal"), ("poyo", "wiener causal"), ("poyo", "wiener acausal"),
        ("poyo", "kalman")}
    assert "| row | metric | information |" in (tmp_path / "synthetic_quick.md").read_text()


def test_bench_on_a_users_continuous_file(tmp_path: Path) -> None:
    """`spikefm bench --data FILE`: contiguous blocks, z-scored behaviour, the same table layout."""
    rng = np.random.default_rng(0)
    velocity = np.zeros((1200, 2))
    for t in range(1, 1200):  # a stationary AR(1) velocity
        velocity[t] = 0.9 * velocity[t - 1] + rng.normal(size=2)
    counts = rng.poisson(np.exp(0.2 * velocity @ rng.normal(size=(2, 12))))
    path = write_recording(from_binned(counts, 0.05, {"hand_vel": velocity}, session="mine"), tmp_path / "mine.h5")
    result = CliRunner().invoke(app, ["bench", "--data", str(path), "--quick", "--models", "",
                                      "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "out" / "file_mine_quick.json").read_text())
    _check_rows(payload)
    assert {row["name"] for row in payload["rows"]} == {"wiener causal", "wiener acausal", "kalman"}
    assert payload["rows"][0]["data"][0]["split_sizes"] == {"test": 12, "train": 42, "val": 6}
    assert all(row["score"] > 0.3 for row in payload["rows"] if row["name"].startswith("wiener"))  # velocity is decodable from these counts


def test_a_run_records_the_commit_it_started_on(synth: Recording, monkeypatch) -> None:
    """A commit made while a long run scores (the forty-second sitting's results file named the later one) must not
    relabel the code that ran; the later commit is kept beside it."""
    import spikefm.eval.protocol as protocol

    commits = iter(["started", "changed", "changed", "changed"])
    monkeypatch.setattr(protocol, "_commit", lambda: next(commits))
    spec = DataSpec("synth-0", synth)
    result = run("t", [wiener()], select_on=spec, score_on=[spec], budget=BUDGET, log=lambda *_: None)
    assert result.environment["commit"] == "started" and result.environment["commit_at_end"] == "changed"


def test_a_sitting_around_a_run_keeps_the_tree_s_true_end_commit() -> None:
    """bench labels a result that run() already labelled: the commit at the end stays the tree's end, not run's start."""
    from spikefm.eval.protocol import started_on

    after_run = started_on({"commit": "end", "cpu": "x"}, "run-start")
    assert after_run == {"commit": "run-start", "commit_at_end": "end", "cpu": "x"}
    assert started_on(after_run, "sitting-start") == {"commit": "sitting-start", "commit_at_end": "end", "cpu": "x"}
    assert started_on({"commit": "same"}, "same") == {"commit": "same"}


def test_an_ablation_row_is_compared_with_its_model_on_the_same_resampled_trials(synth: Recording) -> None:
    spec = DataSpec("synth-0", synth)
    ablated = wiener()
    ablated.name = "wiener causal [lags=same]"  # same fit: the paired difference must be exactly zero
    result = run("t", [wiener(), ablated], select_on=spec, score_on=[spec], budget=BUDGET, log=lambda *_: None)
    (entry,) = result.ablations
    assert (entry["model"], entry["ablation"]) == ("wiener causal", "wiener causal [lags=same]")
    assert entry["difference"] == 0 and entry["interval"] == [0.0, 0.0] and not entry["beats"]
    assert "| wiener causal - wiener causal [lags=same] | decode R2 | +0.000 [+0.000, +0.000] | level |" in (
        result.markdown())
    assert result.to_json()["ablations"] == result.ablations


def test_named_pairs_of_rows_are_compared_on_the_same_resampled_trials(synth: Recording) -> None:
    spec = DataSpec("synth-0", synth)
    causal, acausal = wiener(), wiener(causal=False)
    result = run("t", [causal, acausal], select_on=spec, score_on=[spec], budget=BUDGET, log=lambda *_: None,
                 pairs=[(acausal.name, causal.name)])
    (entry,) = result.pairs
    rows = {r["name"]: r for r in result.rows}
    assert (entry["model"], entry["versus"]) == ("wiener acausal", "wiener causal")
    assert entry["difference"] == pytest.approx(rows["wiener acausal"]["score"] - rows["wiener causal"]["score"],
                                                abs=0.02)
    lo, hi = entry["interval"]
    assert lo <= entry["difference"] <= hi and hi - lo < 0.3  # paired: narrower than either row's own interval
    assert "| wiener acausal - wiener causal | decode R2 |" in result.markdown()
    assert result.to_json()["pairs"] == result.pairs
    for bad in [("wiener acausal", "wiener causall")]:
        with pytest.raises(ValueError, match="no row named 'wiener causall'"):
            run("t", [causal, acausal], select_on=spec, score_on=[spec], budget=BUDGET, pairs=[bad])


def test_models_train_on_random_windows_of_a_continuous_recording(tmp_path: Path) -> None:
    """Its train split is one merged run: trial-start windows were a single window seen every step (M1, 2026-12-04),
    and the trainer's validation loss read one window; now every model samples random windows across the run and
    validation reads every val block."""
    from spikefm.data.splits import merge_split_runs, ordered_trial_splits
    from spikefm.eval.model_candidate import ModelCandidate
    from spikefm.train.data import SpikeDataModule

    rng = np.random.default_rng(0)
    counts = rng.poisson(1.0, size=(2400, 8))
    rec = ordered_trial_splits(contiguous_blocks(from_binned(counts, 0.05, {"hand_vel": rng.normal(size=(2400, 2))}),
                                                 block=1.0))
    task = Task("decode R2", window=1.0, bin_size=0.05, behavior_key="hand_vel", continuous=True)
    candidate = ModelCandidate("ndt1", task, max_steps=2, out_dir=tmp_path)
    assert candidate.sampler == "random"
    config = candidate._config(candidate.default(), seed=0)
    module = SpikeDataModule([merge_split_runs(rec, splits=("train",))], tokenizer=None, data=config.data,
                             batch_size=16)
    starts = {round(w.t0, 6) for w in module.sampler("train", shuffle=True)}
    assert len(starts) > 100
    assert len(list(module.sampler("val", shuffle=False))) == 12  # every val block of 120 s
