"""Every shipped YAML recipe parses, names a registered model and builds its config."""

from pathlib import Path

import pytest

from spikefm.models.registry import build_config
from spikefm.train.config import load_recipe

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))
RECIPES = [path for path in CONFIGS if not path.name.startswith("transfer")]


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_parses_and_builds(path):
    config = load_recipe(path)
    build_config(config.model.name, config.model.preset, **config.model.overrides)
