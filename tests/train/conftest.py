"""A tiny synthetic recipe shared by the training tests."""

import pytest

from spikefm.train.config import RunConfig


def tiny_recipe(out_dir, name: str = "ndt1", **trainer) -> RunConfig:
    """``name``'s tiny preset on one small synthetic session: 30 trials, 3 batches of 8 per epoch."""
    return RunConfig.from_dict({
        "name": name,
        "model": {"name": name},
        "data": {"synthetic": {"n_sessions": 1, "units_per_session": [14, 14], "n_trials": 30}},
        "trainer": {"max_steps": 20, "batch_size": 8, "val_every": 5, "warmup_steps": 3, "out_dir": str(out_dir),
                    "progress": False, "threads": 1, "checkpoint_every": 0, **trainer},
    })


@pytest.fixture(scope="session")
def recipe():
    return tiny_recipe
