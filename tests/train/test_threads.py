"""trainer.threads: explicit, or free physical cores split between local processes."""

import os

import pytest
import torch

from spikefm.train import threads as threads_module
from spikefm.train.threads import default_threads, local_processes, physical_cores, set_threads


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_explicit_threads_are_set():
    assert set_threads(1) == 1 and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="trainer.threads"):
        set_threads(-1)


@pytest.mark.parametrize("cores, load, devices, expected", [
    (8, 0.0, "auto", 8),  # quiet machine: every physical core
    (8, 5.2, "auto", 3),  # five cores busy with other work
    (2, 3.0, "auto", 1),  # busier than the machine: still one
    (8, 0.0, 4, 2),  # four DDP processes on this machine share the cores
])
def test_default_uses_free_physical_cores_per_process(monkeypatch, cores, load, devices, expected):
    monkeypatch.setattr(threads_module, "physical_cores", lambda: cores)
    monkeypatch.setattr(threads_module.os, "getloadavg", lambda: (load, load, load))
    assert default_threads("cpu", devices) == expected
    assert set_threads(0, "cpu", devices) == expected == torch.get_num_threads()


def test_local_processes_and_physical_cores():
    assert local_processes("cpu", "auto") == 1 and local_processes("cpu", 3) == 1 + 2
    assert local_processes("gpu", [0, 1]) == 2 and local_processes("cpu", "2") == 2
    assert 1 <= physical_cores() <= os.cpu_count()
