"""`spikefm bench` suites: every model row of the synthetic suites runs end to end; results from several
sittings merge into one table; the model candidate passes its searched knobs to the trainer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from spikefm.cli import app
from spikefm.eval.bench import MODEL_TASKS, SyntheticSettings, synthetic_suite
from spikefm.eval.cache import ResultCache
from spikefm.eval.candidates import Task
from spikefm.eval.model_candidate import ModelCandidate
from spikefm.eval.protocol import Budget
from spikefm.eval.protocol_report import markdown as synthetic_markdown, merge, merged_markdown

TINY = Budget(trials=1, seeds=1, max_steps=2, bootstrap=10)
#: Rows added for issue 15 (the first suite had NDT1, STNDT, MtM, POYO, POYO+, POSSM).
NEW_ROWS = {"ndt2": "rotational", "ndt3": "rotational", "neds": "rotational", "unified": "rotational",
            "spint": "lorenz", "neuroformer": "rotational", "ndt2_decoder": "rotational"}


@pytest.mark.parametrize("model", sorted(NEW_ROWS))
def test_each_new_synthetic_row_runs_end_to_end(model: str, tmp_path: Path) -> None:
    settings = SyntheticSettings(n_trials=30, units=(12, 12), system=NEW_ROWS[model])
    result = synthetic_suite([model], TINY, tmp_path, ResultCache(tmp_path / "cache"), settings, draws=(1001,),
                             log=lambda *_: None).to_json()
    (row,) = [r for r in result["rows"] if r["role"] == "model"]
    assert row["name"] == model and row["metric"] == MODEL_TASKS[model]
    assert np.isfinite(row["score"]) and row["data"][0]["name"] == settings.name(1001)
    assert row["selected_on"]["data"] == settings.name(0)
    compared = {c["baseline"] for c in result["comparisons"] if c["model"] == model}
    baselines = {r["name"] for r in result["rows"] if r["role"] == "baseline"}
    assert compared and compared <= baselines
    assert all(r["causal"] for r in result["rows"] if r["name"] in compared) or not row["causal"]


def test_the_unified_row_is_paired_with_each_parent_on_the_parents_task() -> None:
    """Within a session the unified model (not its ablations) meets every other model of the same task on the
    same test trials: POYO / POSSM / SPINT decoding, MtM / NDT1 co-smoothing, MtM forward prediction."""
    from spikefm.eval.bench import _models, expand_models, unified_versus_parents
    from spikefm.eval.candidates import masked_metric
    from spikefm.eval.metrics import CO_BPS, DECODE_R2
    from spikefm.eval.mtm_candidate import masked_task
    from spikefm.eval.mtm_tasks import TASKS

    tasks = {CO_BPS: Task(CO_BPS, window=1.0, bin_size=0.05),
             DECODE_R2: Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel"),
             **{masked_metric(t): masked_task(t, window=1.0, bin_size=0.05) for t in TASKS}}
    names = expand_models(["unified", "poyo", "spint", "unified:co-bps", "unified:co-bps:onepass", "mtm", "ndt1",
                           "unified:forward_pred", "mtm:forward_pred"])
    rows = _models(names, lambda m: tasks[MODEL_TASKS[m]], TINY, Path("unused"))
    assert sorted(unified_versus_parents(rows)) == sorted([
        ("unified", "poyo"), ("unified", "spint"), ("unified co-bps", "mtm"), ("unified co-bps", "ndt1"),
        ("unified forward_pred", "mtm forward_pred")])


def test_the_whitened_candidate_is_paired_with_the_recipe_and_the_parents_within_a_session() -> None:
    """The recipe candidate's within-session rows carry its override and meet the parents as the recipe does."""
    from spikefm.eval.bench import UNIFIED_ABLATIONS, _models, expand_models, unified_versus_parents
    from spikefm.eval.metrics import CO_BPS, DECODE_R2
    from spikefm.eval.protocol import ablation_of

    tasks = {CO_BPS: Task(CO_BPS, window=1.0, bin_size=0.05),
             DECODE_R2: Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel")}
    names = expand_models(["unified", "unified:decode:whitened", "poyo", "unified:co-bps", "unified:co-bps:whitened",
                           "mtm"])
    rows = _models(names, lambda m: tasks[MODEL_TASKS[m]], TINY, Path("unused"))
    whitened = [r for r in rows if r.overrides == UNIFIED_ABLATIONS["whitened"]]
    assert len(whitened) == 2 and {r.metric for r in whitened} == {CO_BPS, DECODE_R2}
    pairs = set(unified_versus_parents(rows))
    for row in whitened:
        recipe, parent = ("unified", "poyo") if row.metric == DECODE_R2 else ("unified co-bps", "mtm")
        assert (row.name, parent) in pairs and (recipe, parent) in pairs
        assert ablation_of(row.name) == recipe  # the protocol pairs an ablation row with its recipe's row


def test_the_population_option_is_paired_with_the_recipe_and_possm() -> None:
    """The thirty-ninth and fortieth sittings pair ``unified:decode:population`` with POSSM, as the recipe's row;
    an ingredient's ablation (``table``) meets the recipe only."""
    from spikefm.eval.bench import UNIFIED_ABLATIONS, _models, expand_models, unified_versus_parents
    from spikefm.eval.metrics import DECODE_R2
    from spikefm.eval.protocol import ablation_of

    task = Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel")
    names = expand_models(["unified", "unified:decode:population", "unified:decode:table", "possm"])
    rows = _models(names, lambda m: task, TINY, Path("unused"))
    (population,) = [r for r in rows if r.overrides == UNIFIED_ABLATIONS["population"]]
    (table,) = [r for r in rows if r.overrides == UNIFIED_ABLATIONS["table"]]
    pairs = set(unified_versus_parents(rows))
    assert {(population.name, "possm"), ("unified", "possm")} <= pairs
    assert (table.name, "possm") not in pairs and ablation_of(table.name) == "unified"
    assert ablation_of(population.name) == "unified"


def test_a_synthetic_sitting_reports_the_unified_model_against_its_parent(tmp_path: Path) -> None:
    settings = SyntheticSettings(n_trials=30, units=(12, 12), system="lorenz")
    result = synthetic_suite(["unified", "spint"], TINY, tmp_path, ResultCache(tmp_path / "cache"), settings,
                             draws=(1001,), log=lambda *_: None).to_json()
    (pair,) = result["pairs"]
    assert (pair["model"], pair["versus"], pair["metric"]) == ("unified", "spint", "decode R2")
    assert np.isfinite(pair["difference"]) and pair["interval"][0] <= pair["interval"][1]
    assert "unified - spint" in synthetic_markdown(result)


def test_lorenz_suite_from_the_command_line(tmp_path: Path) -> None:
    """`spikefm bench synthetic-lorenz --quick`: SPINT (its default model) on Lorenz draws, its own files."""
    result = CliRunner().invoke(app, ["bench", "synthetic-lorenz", "--quick", "--budget", "1", "--seeds", "1",
                                      "--steps", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "synthetic_lorenz_quick.json").read_text())
    assert {r["name"] for r in payload["rows"] if r["role"] == "model"} == {"spint"}
    assert {r["data"][0]["name"] for r in payload["rows"]} == {"lorenz-1001"}
    assert json.loads((tmp_path / "synthetic_lorenz_frozen_recipes.json").read_text())["selected_on"] == "lorenz-0"


def test_fresh_draws_from_the_command_line(tmp_path: Path) -> None:
    """`--draws` scores on other generator seeds (a re-run after a test split was read); bad seeds fail clearly."""
    runner = CliRunner()
    args = ["bench", "synthetic-lorenz", "--quick", "--budget", "1", "--seeds", "1", "--steps", "2", "--models", ""]
    result = runner.invoke(app, [*args, "--draws", "2001", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "synthetic_lorenz_quick.json").read_text())
    assert {r["data"][0]["name"] for r in payload["rows"]} == {"lorenz-2001"}
    for bad in ("0,2001", "2001,2001", "x"):
        result = runner.invoke(app, [*args, "--draws", bad, "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2 and "draws" in result.output, result.output


def test_spint_trains_in_the_suite_as_its_recipe() -> None:
    """SPINT calibrates each window from the other windows of its batch: the suite trains it on 64 trial windows
    (its recipe), not on 16 random windows as the per-spike decoders."""
    from spikefm.eval.bench import _models
    from spikefm.train.config import load_recipe

    task = Task("decode R2", window=1.0, bin_size=0.02, behavior_key="hand_vel")
    spint, poyo = _models(["spint", "poyo"], lambda m: task, TINY, Path("unused"))
    recipe = load_recipe(Path(__file__).parents[2] / "configs" / "spint_tiny.yaml", [])
    assert (spint.sampler, spint.batch_size) == (recipe.data.sampler, recipe.trainer.batch_size) == ("trials", 64)
    assert (poyo.sampler, poyo.batch_size) == ("random", 16)


def test_the_searched_ema_reaches_the_trainer() -> None:
    """Regression: the EMA knob used to sit inside a comment, so every trial trained without an EMA."""
    candidate = ModelCandidate("ndt1", Task("co-bps", window=1.0, bin_size=0.02), max_steps=4)
    params = {**candidate.default(), "ema_decay": 0.99, "keep_best": "val/loss"}
    trainer = candidate._config(params, seed=1).trainer
    assert trainer.ema_decay == 0.99 and trainer.keep_best == "val/loss"


def test_a_multi_task_decoder_is_told_its_behaviour_key() -> None:
    candidate = ModelCandidate("unified", Task("decode R2", window=1.0, bin_size=0.02, behavior_key="cursor_vel"))
    overrides = candidate._config(candidate.default(), seed=1).model.overrides
    assert list(overrides["behavior_keys"]) == ["cursor_vel"] and "behavior_key" not in overrides


# ----------------------------------------------------------------------------- merging results
def _row(name: str, role: str, metric: str, score: float, draws=("synth-1001", "synth-1002")) -> dict[str, Any]:
    return {"name": name, "role": role, "metric": metric, "information": f"{name} reads", "causal": False,
            "score": score, "interval": [score - 0.01, score + 0.01], "seeds": [1, 2, 3],
            "chosen_config": {"alpha": 1.0}, "cpu_hours": 0.01,
            "data": [{"name": d, "split_sizes": {"test": 20}} for d in draws]}


def _result(rows: list[dict], comparisons: list[dict]) -> dict[str, Any]:
    env = {"commit": "abc", "cpu": "cpu", "cores": 2, "torch_threads": 1, "torch": "2", "gpu": None}
    budget = {"trials": 6, "seeds": 3, "max_steps": 600, "bootstrap": 1000, "pruner": "median"}
    return {"suite": "synthetic", "budget": budget, "environment": env, "wall_seconds": 60.0, "cpu_hours": 0.1,
            "notes": [], "rows": rows, "comparisons": comparisons}


def _diff(model: str, baseline: str, lo: float, hi: float) -> dict[str, Any]:
    return {"metric": "decode R2", "model": model, "baseline": baseline, "baseline_information": "",
            "difference": (lo + hi) / 2, "interval": [lo, hi], "beats": lo > 0}


def test_merge_keeps_each_models_own_comparison_against_its_best_baseline() -> None:
    first = _result([_row("wiener", "baseline", "decode R2", 0.80), _row("kalman", "baseline", "decode R2", 0.70),
                     _row("poyo", "model", "decode R2", 0.90)],
                    [_diff("poyo", "wiener", 0.05, 0.15), _diff("poyo", "kalman", 0.15, 0.25)])
    second = _result([_row("wiener", "baseline", "decode R2", 0.80), _row("kalman", "baseline", "decode R2", 0.70),
                      _row("possm", "model", "decode R2", 0.79)],
                     [_diff("possm", "wiener", -0.03, 0.01), _diff("possm", "kalman", 0.05, 0.13)])
    merged = merge([first, second], sources=["a.json", "b.json"])
    best = {m["name"]: m["best_baseline"] for m in merged["models"]}
    assert best["poyo"]["name"] == best["possm"]["name"] == "wiener"  # the strongest, not the one beaten most
    assert best["poyo"]["difference_interval"] == [0.05, 0.15]
    assert [b["name"] for b in merged["baselines"]] == ["wiener", "kalman"]  # the same rows appear once
    assert merged["baselines"][0]["sources"] == ["a.json", "b.json"]
    table = merged_markdown(merged)
    poyo_line, possm_line = (line for line in table.splitlines() if line.startswith(("| poyo", "| possm")))
    assert "**0.900" in poyo_line and "**+0.100 [+0.050, +0.150]**" in poyo_line
    assert "**" not in possm_line  # its difference interval includes zero
    assert "synth-1001/1002" in poyo_line and "(one budget)" in table


def test_merge_refuses_one_model_twice_on_the_same_data() -> None:
    rows = [_row("wiener", "baseline", "decode R2", 0.8), _row("poyo", "model", "decode R2", 0.9)]
    result = _result(rows, [_diff("poyo", "wiener", 0.05, 0.15)])
    with pytest.raises(ValueError, match="poyo .* keep one"):
        merge([result, result])


def test_bench_merge_command_writes_one_table(tmp_path: Path) -> None:
    rows = [_row("wiener", "baseline", "decode R2", 0.8), _row("poyo", "model", "decode R2", 0.9)]
    (tmp_path / "a.json").write_text(json.dumps(_result(rows, [_diff("poyo", "wiener", 0.05, 0.15)])))
    result = CliRunner().invoke(app, ["bench", "--merge", str(tmp_path / "a.json"), "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    assert "| poyo | synth-1001/1002 |" in (tmp_path / "m" / "merged.md").read_text()
    assert json.loads((tmp_path / "m" / "merged.json").read_text())["models"][0]["name"] == "poyo"


def test_merge_rewrites_only_the_marked_table_of_a_document(tmp_path: Path) -> None:
    rows = [_row("wiener", "baseline", "decode R2", 0.8), _row("poyo", "model", "decode R2", 0.9)]
    (tmp_path / "a.json").write_text(json.dumps(_result(rows, [_diff("poyo", "wiener", 0.05, 0.15)])))
    readme = tmp_path / "README.md"
    readme.write_text("# Results\nintro\n<!-- merged table: generated -->\nold row\n<!-- end merged table -->\nrest\n")
    result = CliRunner().invoke(app, ["bench", "--merge", str(tmp_path / "a.json"), "--into", str(readme),
                                      "--out", str(tmp_path / "m")])
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "old row" not in text and "| poyo | synth-1001/1002 |" in text
    assert text.startswith("# Results\nintro\n<!-- merged table") and text.endswith("<!-- end merged table -->\nrest\n")
    assert "| baseline |" not in text  # the README shows the models' table only


def test_an_interrupted_training_is_never_scored(monkeypatch, tmp_path: Path) -> None:
    """Regression: a SIGTERM during a search trial returned the half-trained model, which was validated and cached."""
    import spikefm.train.fit as fit_module

    class Stopped:
        interrupted, run_dir = True, tmp_path

    monkeypatch.setattr(fit_module, "fit", lambda *args, **kwargs: Stopped())
    candidate = ModelCandidate("ndt1", Task("co-bps", window=1.0, bin_size=0.02), max_steps=4, out_dir=tmp_path)
    dev = SyntheticSettings(n_trials=30, units=(12, 12)).draw(0)
    with pytest.raises(KeyboardInterrupt, match="stopped by a signal"):
        candidate.fit(dev, candidate.default(), seed=1)


def test_a_run_table_bolds_a_model_only_when_it_beats_every_baseline() -> None:
    """Regression: STNDT was bold for beating the causal smoothing while tying the acausal one."""
    from spikefm.eval.protocol_report import markdown

    rows = [_row("smoothing", "baseline", "decode R2", 0.80), _row("smoothing causal", "baseline", "decode R2", 0.7),
            _row("stndt", "model", "decode R2", 0.81), _row("mtm", "model", "decode R2", 0.9)]
    for row in rows:
        row |= {"selected_on": {"data": "synth-0"}, "per_seed_scores": [[row["score"]]]}
    result = _result(rows, [_diff("stndt", "smoothing", -0.01, 0.03), _diff("stndt", "smoothing causal", 0.05, 0.2),
                            _diff("mtm", "smoothing", 0.05, 0.15), _diff("mtm", "smoothing causal", 0.1, 0.3)])
    lines = {line.split(" | ")[0]: line for line in markdown(result).splitlines() if line.startswith("| ")}
    assert "**" not in lines["| stndt"] and "**0.900" in lines["| mtm"]


def test_a_sitting_records_the_commit_it_started_on(monkeypatch, tmp_path: Path) -> None:
    """A long sitting imports the tree as it was when it started; a later HEAD is recorded beside it."""
    from spikefm.eval import bench, protocol

    commits = iter(["start", "end", "end", "end"])
    real = protocol.environment
    monkeypatch.setattr(bench, "environment", lambda: {**real(), "commit": next(commits)})
    monkeypatch.setattr(protocol, "environment", lambda: {**real(), "commit": next(commits)})
    _, md_path, payload = bench.run_bench("synthetic", quick=True, models=[], trials=1, seeds=1, out=tmp_path,
                                          log=lambda *_: None)
    assert payload["environment"]["commit"] == "start" and payload["environment"]["commit_at_end"] == "end"
    assert "Commit start (the tree was at end when it ended)" in md_path.read_text()
