"""benchmarks/gpu_throughput.py runs end to end in its CPU dry-run mode."""


def test_dry_run_reports_tokens_per_second_and_mfu(tmp_path, benchmark_script):
    module = benchmark_script("gpu_throughput")
    records = module.main(["--dry-run", "--out", str(tmp_path / "out.json")])
    assert [r["model"] for r in records] == ["poyo", "possm", "unified"]  # issue 18: POYO and the unified model
    assert [r["packed"] for r in records] == [False, True, True]
    for record in records:
        assert record["tokens_per_s"] > 0 and record["flops_per_step"] > 0 and 0 < record["mfu"]
    assert (tmp_path / "out.json").exists()
    assert module._peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.0
