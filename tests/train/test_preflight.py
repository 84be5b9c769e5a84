"""Checks a run makes before it starts: the machine can run the trainer settings it asks for."""

from __future__ import annotations

import pytest
import torch

from spikefm.train.config import TrainerConfig
from spikefm.train.preflight import ConfigError, check_accelerator


@pytest.mark.skipif(torch.cuda.is_available(), reason="FSDP runs where there is a GPU")
def test_fsdp_without_a_gpu_stops_before_training_with_lightnings_reason() -> None:
    with pytest.raises(ConfigError, match=r"strategy='fsdp' cannot run here: .*GPU"):
        check_accelerator(TrainerConfig(accelerator="cpu", devices=1, strategy="fsdp"))


def test_a_cpu_trainer_passes() -> None:
    check_accelerator(TrainerConfig(accelerator="cpu", devices=1, strategy="auto"))
