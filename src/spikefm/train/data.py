"""Recordings for a recipe, and the Lightning data module over them."""

from __future__ import annotations

import math
from functools import partial
from typing import Callable, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader

from spikefm.data.checks import check_trainable
from spikefm.data.dataset import WindowDataset
from spikefm.data.recording import DataError, Recording
from spikefm.data.sampling import RandomWindowSampler, TrialWindowSampler
from spikefm.tokenize.base import collate
from spikefm.train.config import DataConfig

__all__ = ["load_recordings", "SpikeDataModule"]


def load_recordings(config: DataConfig, *, seed: int = 0) -> tuple[list[Recording], object | None]:
    """The recipe's recordings, and the synthetic dataset (with ground truth) when it is synthetic."""
    if config.paths:
        from spikefm.data.store import load

        recordings, dataset = [load(path) for path in config.paths], None
    else:
        from spikefm.data.synthetic import SyntheticConfig, generate

        dataset = generate(SyntheticConfig(**{"seed": seed, **config.synthetic}))
        recordings = list(dataset.recordings)
    if config.sessions:
        available = [r.session for r in recordings]
        missing = sorted(set(config.sessions) - set(available))
        if missing:
            raise DataError(f"data.sessions names {missing}, not among the recordings' sessions {available}")
        recordings = [r for r in recordings if r.session in config.sessions]
    return check_trainable(recordings), dataset


class SpikeDataModule(L.LightningDataModule):
    """Train / val loaders: windows from the samplers, tokenized in workers, collated.

    Windows are trial-aligned (``sampler: trials``, split by the trials' ``split`` column) or
    random inside the split's trials (``sampler: random``). Samplers shard by rank themselves,
    so the Lightning trainer must run with ``use_distributed_sampler=False``.

    When the trainer resumes from a checkpoint, the training loader skips the batches that the
    interrupted epoch already used (every epoch has the same number of batches, so step
    ``global_step`` is batch ``global_step % batches_per_epoch`` of epoch ``global_step //
    batches_per_epoch``).
    """

    def __init__(
        self,
        recordings: Sequence[Recording],
        tokenizer: Callable,
        *,
        data: DataConfig,
        batch_size: int,
        seed: int = 0,
        num_workers: int = 0,
        pack: bool = False,
    ) -> None:
        super().__init__()
        self.recordings = list(recordings)
        self.tokenizer = tokenizer
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.collate = partial(collate, pack=pack)

    def sampler(self, split: str, *, shuffle: bool):
        cfg = self.data
        if cfg.sampler == "random" and shuffle:
            return RandomWindowSampler(
                self.recordings, cfg.window, cfg.windows_per_epoch, seed=self.seed, intervals=split
            )
        return TrialWindowSampler(
            self.recordings, align=cfg.align, before=cfg.before, after=cfg.window - cfg.before, split=split,
            shuffle=shuffle, seed=self.seed,
        )

    def loader(self, split: str, *, shuffle: bool, resume_step: int = 0) -> DataLoader:
        sampler = self.sampler(split, shuffle=shuffle)
        if resume_step:
            batches = math.ceil(len(sampler) / self.batch_size)
            sampler.resume_at(resume_step // batches, (resume_step % batches) * self.batch_size)
        return DataLoader(
            WindowDataset(self.recordings, self.tokenizer),
            sampler=sampler,
            batch_size=self.batch_size,
            collate_fn=self.collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            drop_last=False,
            # Its own generator: a loader's iterator would otherwise draw its seed from the global
            # torch RNG, which masking also draws from, so a resumed run would drift.
            generator=torch.Generator().manual_seed(self.seed),
        )

    def train_dataloader(self) -> DataLoader:
        step = self.trainer.global_step if self.trainer is not None else 0  # > 0 when resuming
        return self.loader("train", shuffle=True, resume_step=step)

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)
