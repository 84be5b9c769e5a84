"""The POYO vs torch_brain benchmark's run summaries and target lines (fast: no timing, no torch_brain)."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(benchmark_script):
    return benchmark_script("vs_torch_brain")


def run(step: float, infer: float, pipeline: float = 6.0, rate: float = 25e6) -> dict:
    return {
        "date": "2026-12-04 06:30 UTC", "commit": "abc1234", "load": [0.1, 0.2],
        "spikes_per_s": {"padded": rate, "packed": rate}, "pipeline_ratio": {"padded": pipeline, "packed": pipeline},
        "step_ratio": {"1": {"padded": step, "packed": step}}, "infer_ratio": {"1": {"padded": infer, "packed": infer}},
    }  # fmt: skip


def test_targets_use_the_median_of_runs_and_show_a_regression_as_not_met(bench):
    streaming = [{"model": "possm", "units": 200, "p50": 0.4, "p99": 0.9}]
    good = bench.targets([run(0.30, 0.18), run(0.31, 0.19), run(0.50, 0.50)], [1], streaming)
    by_median = [line for line in good if not line.startswith("- done when")]
    assert all(line.endswith("(met)") or "(met;" in line for line in by_median), good
    step = next(line for line in good if "training step" in line)
    assert "0.31 (0.30-0.50)x" in step and "2 of 3 meet it" in step
    bad = bench.targets([run(0.40, 0.18, pipeline=4.0, rate=10e6)], [1], [{**streaming[0], "p50": 1.2, "p99": 2.0}])
    missed = [line for line in bad if "**NOT met**" in line]
    assert len(missed) == 6  # spikes/s, pipeline ratio, step (padded, packed), done-when, streaming; inference met
    assert not any(line.startswith("- inference") for line in missed)


def test_done_when_needs_the_last_three_runs_each_to_meet_every_float32_line(bench):
    met_all = [run(0.30, 0.18), run(0.31, 0.19), run(0.32, 0.19)]
    (line,) = [x for x in bench.targets(met_all, [1], []) if x.startswith("- done when")]
    assert line.endswith("(met)") and line.count("all met") == 3
    # The medians meet every line, but one run of the last three misses the step and the spikes/s line.
    one_slow = [run(0.30, 0.18), run(0.40, 0.18, rate=19e6), run(0.31, 0.19)]
    lines = bench.targets(one_slow, [1], [])
    assert all(x.endswith("(met)") for x in lines if not x.startswith("- done when"))
    (line,) = [x for x in lines if x.startswith("- done when")]
    assert line.endswith("(**NOT met**)") and "spikes/s, step padded 1 thr, step packed 1 thr" in line
    (line,) = [x for x in bench.targets(met_all[:2], [1], []) if x.startswith("- done when")]
    assert line.endswith("(**NOT met**)")  # two runs are not three


def test_curve_tolerance_compares_20_step_means(bench):
    reference = [1.0] * 40
    assert bench.curve_within_tolerance([1.1] * 40, reference) == (True, pytest.approx(0.1))
    ok, worst = bench.curve_within_tolerance([1.0] * 20 + [1.5] * 20, reference)
    assert not ok and worst == pytest.approx(0.5)


def test_spread_is_median_and_range(bench):
    assert bench.spread([0.3, 0.1, 0.2]) == "0.20 (0.10-0.30)"
    assert bench.spread([0.25]) == "0.25"
    assert bench.spread([]) == "-"


def test_distance_to_targets_is_computed_from_the_runs_own_numbers(bench):
    ours, theirs = bench.Row("spikefm POYO, padded"), bench.Row("torch_brain 0.2.1 POYO (pad8)")
    ours.steps, ours.infer_ms = {1: [0.2]}, {1: 60.0}
    theirs.steps, theirs.infer_ms = {1: [0.5]}, {1: 300.0}
    hw = {"flops": {ours.name: (10e9, 3e9), theirs.name: (20e9, 6e9)}, "peak": {1: 100.0, 2: 190.0}}
    (line,) = bench.distance_to_targets({r.name: r for r in (ours, theirs)}, hw)
    # step: 0.33 x 500 ms = 165 ms for 10 GFLOP = 61 GFLOP/s; ours 200 ms = 50 GFLOP/s; the peak does it in 100 ms
    assert "the step target is 165 ms" in line and "0.61 of the peak" in line and "in 200 ms (0.50 of the peak" in line
    assert "at the whole peak 100 ms = 0.20x" in line
    assert "the inference target is 60 ms" in line and "in 60 ms (0.50 of the peak" in line
    assert bench.distance_to_targets({ours.name: ours}, hw) == []  # no torch_brain row: nothing to compare


def test_bf16_matmul_rows_are_reported_apart_from_the_float32_targets(bench):
    rows = {name: bench.Row(name) for name in ("spikefm POYO, padded", "spikefm POYO, packed",
                                               "torch_brain 0.2.1 POYO (pad8)", "spikefm POYO, packed bf16-matmul",
                                               "torch_brain 0.2.1 POYO (pad8), bf16-matmul")}
    times = {"spikefm POYO, padded": (0.2, 60.0, 30e6), "spikefm POYO, packed": (0.2, 60.0, 31e6),
             "torch_brain 0.2.1 POYO (pad8)": (0.5, 200.0, 3e6), "spikefm POYO, packed bf16-matmul": (0.16, 50.0, 0.0),
             "torch_brain 0.2.1 POYO (pad8), bf16-matmul": (0.4, 150.0, 3e6)}
    for name, (step, infer, rate) in times.items():
        rows[name].steps, rows[name].infer_ms, rows[name].spikes_per_s = {1: [step]}, {1: infer}, rate
    summary = bench.run_summary(rows, [1], (0.1, 0.2))
    assert set(summary["spikes_per_s"]) == {"padded", "packed"}  # the pipeline is the float32 rows'
    assert summary["pipeline_ratio"]["packed"] == pytest.approx(31 / 3)
    assert summary["step_ratio"]["1"]["packed bf16-matmul"] == pytest.approx(0.16 / 0.5)  # vs torch_brain float32
    assert summary["bf16_same_precision"]["1"]["step packed bf16-matmul"] == pytest.approx(0.16 / 0.4)
    lines = bench.targets([summary], [1], [])
    float32 = [line for line in lines if "float32, 1 thread" in line]
    assert len(float32) == 2 and all("**NOT met**" in line for line in float32)  # 0.4x: the bf16 row does not count
    (bf16,) = [line for line in lines if "bf16 matmuls" in line]
    assert "step 0.32x torch_brain's float32 time (met" in bf16 and "step 0.40x" in bf16 and "inference 0.25x" in bf16
    old = run(0.4, 0.3)  # runs recorded before the bf16 rows still summarize
    assert not [line for line in bench.targets([old], [1], []) if "bf16" in line]


def test_a_variant_keeps_the_curve_within_float32s_own_distance_from_itself(bench):
    fp32 = bench.Variant("float32", impl=None, steps=[0.2], losses=[1.0] * 40, reseeded=[1.0] * 20 + [1.3] * 20)
    close = bench.Variant("bf16 matmuls", impl=None, steps=[0.17], losses=[1.0] * 20 + [1.25] * 20)
    far = bench.Variant("other", impl=None, steps=[0.1], losses=[1.0] * 20 + [1.5] * 20)
    lines = bench.limits_section({"peak": {1: 100.0, 2: 200.0}, "flops": {}}, {}, [fp32, close, far])
    assert any("float32 with other dropout draws: worst 20-step mean +30.0%, so the tolerance is 30.0%" in line
               for line in lines)
    assert "within 30.0%" in next(line for line in lines if line.startswith("| bf16 matmuls"))
    assert "yes, opt-in" in next(line for line in lines if line.startswith("| bf16 matmuls"))
    assert "no (curve)" in next(line for line in lines if line.startswith("| other"))
    fp32.reseeded = [1.0] * 40  # a float32 curve that reproduces itself: the stated 20% holds
    assert "no (curve)" in next(line for line in bench.limits_section({"peak": {1: 1.0, 2: 1.0}, "flops": {}}, {},
                                                                       [fp32, close]) if line.startswith("| bf16"))


def test_steady_allocator_says_what_it_set(bench):
    line = bench.steady_allocator()
    assert line.startswith("glibc malloc with its mmap threshold at 256 MiB") or "set nothing" in line


@pytest.mark.parametrize("pack", [False, True])
def test_key_count_sees_the_fused_packed_kernel(bench, tmp_path, pack):
    from spikefm.data.store import write_recording
    from spikefm.tokenize.base import N_TOKEN_TYPES

    setup = bench.Setup()
    recording = bench.build_recording(20.0, setup, 0)
    write_recording(recording, tmp_path / "ours.h5")
    batch = bench.OursPipeline(tmp_path / "ours.h5", setup, pack=pack)(bench.window_starts(20.0, setup, 4, 0))
    real, computed, rows = bench.ours_counts(batch, bench.build_ours(recording, setup, 0))
    assert real == computed > 0  # every real key reaches the kernel, no padded one (the fused path counted too)
    assert rows <= N_TOKEN_TYPES * setup.n_units  # distinct (unit, token type) rows, not spikes
