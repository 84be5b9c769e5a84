import pytest

from spikefm.data.synthetic import SyntheticConfig, generate


@pytest.fixture(scope="session")
def small_dataset():
    """Two small synthetic sessions shared by the model tests."""
    return generate(SyntheticConfig(n_sessions=2, units_per_session=(14, 18), n_trials=30, seed=3))
