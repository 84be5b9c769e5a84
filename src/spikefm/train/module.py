"""The Lightning module: any spikefm model + its objective, AdamW with warm-up and cosine decay."""

from __future__ import annotations

import math
from typing import Callable

import lightning as L
import torch
import torch.nn as nn

from spikefm.train.checkpoints import plain
from spikefm.train.config import TrainerConfig
from spikefm.train.optim import adamw, fuses_with

__all__ = ["SpikeModule", "warmup_cosine"]


def warmup_cosine(step: int, *, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """Learning-rate multiplier: linear warm-up to 1, then cosine decay to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, max_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class SpikeModule(L.LightningModule):
    """Wraps ``model`` (``forward(batch) -> dict``) and ``objective`` (``(outputs, batch) -> (loss, metrics)``).

    Args:
        model: a spikefm model.
        objective: its loss function.
        trainer: optimisation settings.
        run_config: the whole recipe as a dict, saved in checkpoints so the model can be rebuilt.
        data_sizes: sizes read from the data that the model was built with (saved likewise).
        unit_ids: per training session, its unit ids in order (saved likewise, so evaluation can
            refuse a recording of the same session with other neurons).

    All three are stored as plain data, so checkpoints load with ``torch.load(weights_only=True)``.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        objective: Callable,
        trainer: TrainerConfig,
        run_config: dict | None = None,
        data_sizes: dict | None = None,
        unit_ids: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.objective = objective
        self.trainer_config = trainer
        self.save_hyperparameters(
            {"run_config": plain(run_config or {}), "data_sizes": plain(data_sizes or {}), "unit_ids": plain(unit_ids or {})}
        )

    def forward(self, batch) -> dict:
        return self.model(batch)

    def _step(self, batch, stage: str) -> torch.Tensor:
        outputs = self.model(batch)
        loss, metrics = self.objective(outputs, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{stage} loss is {loss.item()} (non-finite); lower trainer.lr or check the data for NaNs"
            )
        batch_size = int(batch.mask.shape[0]) if batch.mask.dim() > 1 else int(batch.cu_seqlens.numel() - 1)
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=batch_size, sync_dist=stage != "train")
        for name, value in metrics.items():
            self.log(f"{stage}/{name}", value, batch_size=batch_size, sync_dist=stage != "train")
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "val")

    def configure_optimizers(self):
        cfg = self.trainer_config
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            if not param.requires_grad:
                continue
            # Norms, biases and embedding tables are not decayed (the usual transformer recipe).
            (no_decay if param.ndim < 2 or "embed" in name or "norm" in name else decay).append(param)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        precision = self.trainer.precision if self._trainer is not None else "32-true"
        optimizer = adamw(groups, lr=cfg.lr, fused=fuses_with(precision, cfg.grad_clip))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine(
                step, warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps, min_lr_ratio=cfg.min_lr_ratio
            ),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
