"""The README works as written: its tour runs, its commands exist, its links resolve (issue 17, items 11-12)."""

import re
from pathlib import Path

import typer

from spikefm.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_tour_runs_as_written(tmp_path, monkeypatch):
    (tour,) = _blocks("python")
    assert "shared/" not in tour  # a user's clone has no shared data folder
    monkeypatch.chdir(tmp_path)  # the tour writes synth-0.h5 into the working folder
    namespace: dict = {}
    exec(compile(tour, "README.md tour", "exec"), namespace)
    assert (tmp_path / "synth-0.h5").exists()
    assert namespace["again"].n_spikes == namespace["rec"].n_spikes
    assert namespace["counts"].shape == (50, namespace["rec"].n_units)


def test_setup_commands_and_cpu_route_are_documented():
    bash = "\n".join(_blocks("bash"))
    assert "pip install -e . && spikefm demo" in bash
    assert 'pip install -e ".[test]" && python -m pytest' in bash
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in bash


def test_every_readme_command_exists_with_its_options():
    commands = typer.main.get_command(app).commands
    for line in "\n".join(_blocks("bash")).splitlines():
        if not line.startswith("spikefm "):
            continue
        words = line.split("#")[0].split()
        command = commands.get(words[1])
        assert command is not None, line
        options = {opt for param in command.params for opt in param.opts}
        for word in words[2:]:
            if word.startswith("--"):
                assert word in options, f"{line}: {word} is not an option of `spikefm {words[1]}`"


def test_layout_points_to_the_design_document():
    assert "docs/design.md" in README and (ROOT / "docs" / "design.md").exists()
