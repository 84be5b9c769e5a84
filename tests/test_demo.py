import io

from rich.console import Console

from spikefm.demo import QUICK_STEPS, demo_recipes, run_demo


def test_demo_runs_end_to_end_and_says_what_it_is_doing(tmp_path, capsys):
    output = io.StringIO()
    console = Console(file=output, width=200)
    report = run_demo(tmp_path, console=console, steps={"ndt1": 4, "poyo": 4}, threads=1)
    text = report.read_text()
    assert "## ndt1 (tiny)" in text and "## poyo (tiny)" in text and "oracle" in text
    assert (tmp_path / "data" / "synth-0.h5").exists()
    assert (tmp_path / "poyo_behavior.png").exists() and (tmp_path / "ndt1_rates.png").exists()
    printed = output.getvalue()
    assert printed.index("expected") < printed.index("[1/6]")  # the expected duration, before anything runs
    for phase in ("[1/6] generating", "[2/6] training tiny NDT1", "[3/6] scoring NDT1", "[4/6] training tiny POYO",
                  "[5/6] scoring POYO", "[6/6] writing the report"):
        assert phase in printed
    assert "training 4 steps" in capsys.readouterr().out  # training progress in steps (plain lines: not a TTY)


def test_quick_demo_trains_shorter_recipes(tmp_path):
    quick = demo_recipes(tmp_path, quick=True)
    full = demo_recipes(tmp_path)
    for name, steps in QUICK_STEPS.items():
        assert quick[name]["trainer"]["max_steps"] == steps < full[name]["trainer"]["max_steps"]
        assert quick[name]["trainer"].get("ema_decay", 0) <= full[name]["trainer"].get("ema_decay", 0)
        assert {k: v for k, v in quick[name].items() if k != "trainer"} == {k: v for k, v in full[name].items()
                                                                            if k != "trainer"}


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


def test_demo_states_its_duration_for_this_machine(monkeypatch):
    import doctest
    import os

    import spikefm.demo as demo
    import spikefm.train.progress as progress

    monkeypatch.setattr(os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    quiet = demo._expected(quick=False, custom=False)
    assert f"about {demo.EXPECTED_MINUTES['full']:.0f} min" in quiet and "--quick" in quiet and "busy" not in quiet
    monkeypatch.setattr(os, "getloadavg", lambda: (30.0, 30.0, 30.0))
    assert "this machine is busy (load 30.0" in demo._expected(quick=True, custom=False)
    for module in (demo, progress):
        assert doctest.testmod(module).failed == 0
