"""The curation experiment's summary over seeds (fast: synthetic records, no training)."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def experiment(benchmark_script):
    return benchmark_script("curation_experiment")


def test_summary_pairs_sets_by_seed_and_says_when_an_interval_excludes_zero(experiment, tmp_path: Path) -> None:
    rows = []
    for seed, (curated, random, every) in enumerate([(0.9, 0.5, 0.1), (0.92, 0.4, 0.0), (0.88, 0.6, 0.05)]):
        for name, score in (("curated", curated), ("random", random), ("all", every)):
            record = {"target": "g1", "set": name, "steps": 150, "vel_r2": score}
            rows.append(record if seed == 0 else {**record, "seed": seed})  # the first runs wrote no seed
    rows.append({"target": "g1", "set": "all", "steps": 4800, "vel_r2": 0.8})  # another recipe: left out
    path = tmp_path / "curation.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = experiment.summarize(path)
    assert "| g1 | curated | 3 | +0.900 [+0.850, +0.950] |" in table
    assert "| g1 | all | 3 | +0.050 [" in table
    assert "| g1 | curated - all | 3 | +0.850 [" in table and table.rstrip().endswith("| yes |")
    assert "| g1 | curated - random | 3 | +0.400 [" in table
    assert "all 2 targets" not in table  # one target: nothing to pool


def test_targets_pool_into_one_interval_over_targets(experiment, tmp_path: Path) -> None:
    rows = [{"target": t, "set": name, "seed": seed, "steps": 150, "vel_r2": score + 0.01 * seed}
            for t, gap in (("g1", 0.3), ("g2", 0.5)) for seed in range(2)
            for name, score in (("curated", 0.5 + gap), ("random", 0.5), ("all", 0.0))]
    path = tmp_path / "curation.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = experiment.summarize(path)
    assert "| all 2 targets | curated - random | 2 targets | +0.400 [" in table


def test_one_seed_has_no_interval(experiment) -> None:
    mean, lo, hi = experiment.seed_interval([0.5])
    assert mean == 0.5 and lo != lo and hi != hi


def test_the_scale_curve_is_summarized_over_seeds(experiment, tmp_path: Path) -> None:
    rows = [{"target": "g4", "set": f"random{n}", "seed": seed, "steps": 150, "n_sessions": n, "vel_r2": score + seed / 100}
            for seed in range(3) for n, score in ((4, 0.3), (16, 0.2))]
    rows += [{"target": "g4", "set": "random", "seed": 0, "steps": 150, "n_sessions": 8, "vel_r2": 0.26},
             {"target": "g4", "set": "all", "seed": 0, "steps": 150, "n_sessions": 254, "vel_r2": 0.0},
             {"target": "g4", "set": "all", "seed": 0, "steps": 4800, "n_sessions": 254, "vel_r2": 0.8}]
    path = tmp_path / "curve.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = experiment.summarize(path)
    assert "| 4 | 3 | +0.310 [" in table and "| 16 | 3 | +0.210 [" in table
    assert "| 8 | 1 | +0.260 |" in table and "| 254 | 1 | +0.000 |" in table  # the 4,800-step run is left out
