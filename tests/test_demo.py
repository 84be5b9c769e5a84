from rich.console import Console

from spikefm.demo import run_demo


def test_demo_runs_end_to_end_quickly(tmp_path):
    report = run_demo(tmp_path, quick=True, console=Console(quiet=True))
    text = report.read_text()
    assert "## ndt1 (tiny)" in text and "## poyo (tiny)" in text and "oracle" in text
    assert (tmp_path / "data" / "synth-0.h5").exists()
    assert (tmp_path / "poyo_behavior.png").exists() and (tmp_path / "ndt1_rates.png").exists()
