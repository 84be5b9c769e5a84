from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.models import _shared
from spikefm.nn.dropout import FastDropout


@pytest.fixture(scope="session")
def small_dataset():
    """Two small synthetic sessions shared by the model tests."""
    return generate(SyntheticConfig(n_sessions=2, units_per_session=(14, 18), n_trials=30, seed=3))


def torch_dropout(self: FastDropout, x: torch.Tensor) -> torch.Tensor:
    """``FastDropout.forward`` with torch's kernel, which drew the dropout masks of the reference files
    (``data/*_reference.pt``; FastDropout draws other masks from the same RNG)."""
    return torch.nn.functional.dropout(x, self.p, self.training)


def numpy_kept_count(n: int, min_units: int) -> int:
    """Unit dropout's kept-unit count as the reference files drew it, from numpy's global generator (the model
    now draws it from torch's, so that ``torch.manual_seed`` alone fixes a training step)."""
    return int(np.random.triangular(min_units, n, n + 1e-9))


@pytest.fixture
def assert_matches_reference(monkeypatch):
    """``check(path, compute)``: ``compute()`` (run under :func:`torch_dropout` and :func:`numpy_kept_count`) gives
    the entries saved in ``path``: tensors to 1e-6, other values (state-dict names and shapes) exactly."""
    monkeypatch.setattr(FastDropout, "forward", torch_dropout)
    monkeypatch.setattr(_shared, "_kept_count", numpy_kept_count)

    def check(path: Path, compute: Callable[[], dict]) -> None:
        expected = torch.load(path)
        actual = compute()
        assert sorted(actual) == sorted(expected)
        for key, value in expected.items():
            if not isinstance(value, torch.Tensor):
                assert actual[key] == value, key
                continue
            torch.testing.assert_close(actual[key], value, atol=1e-6, rtol=1e-6, msg=lambda m, key=key: f"{key}: {m}")

    return check


def regenerate(path: Path, compute: Callable[[], dict]) -> None:
    """Write a reference file: ``compute()`` under :func:`torch_dropout` and :func:`numpy_kept_count` (a reference
    test's ``__main__``)."""
    FastDropout.forward = torch_dropout
    _shared._kept_count = numpy_kept_count
    torch.save(compute(), path)
    print(f"wrote {path}")
