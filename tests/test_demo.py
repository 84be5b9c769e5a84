from rich.console import Console

from spikefm.demo import run_demo


def test_demo_runs_end_to_end_quickly(tmp_path):
    report = run_demo(tmp_path, quick=True, console=Console(quiet=True))
    text = report.read_text()
    assert "## ndt1 (tiny)" in text and "## poyo (tiny)" in text and "oracle" in text
    assert (tmp_path / "data" / "synth-0.h5").exists()
    assert (tmp_path / "poyo_behavior.png").exists() and (tmp_path / "ndt1_rates.png").exists()


def test_demo_recipes_are_the_shipped_tiny_recipes(tmp_path):
    from pathlib import Path

    import yaml

    from spikefm.demo import demo_recipes

    configs = Path(__file__).resolve().parents[1] / "configs"
    for name, recipe in demo_recipes(tmp_path).items():
        shipped = yaml.safe_load((configs / f"{name}_tiny.yaml").read_text())
        assert shipped["model"] == recipe["model"]
        assert shipped["data"] == recipe["data"]
        for key, value in shipped["trainer"].items():
            assert recipe["trainer"][key] == value, (name, key)
