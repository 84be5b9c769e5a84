"""``fit(recipe)``: build data, tokenizer, model and objective from a recipe and train them.

The same call runs on a laptop CPU and on many GPUs (``trainer.devices``, ``trainer.strategy:
ddp``); checkpoints carry the recipe and the data sizes so :func:`load_checkpoint` rebuilds
the model without the data.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from spikefm.data.recording import Recording
from spikefm.models.registry import ModelSpec, build_config, get_spec
from spikefm.nn.identity import fix_vocabularies
from spikefm.train.config import RunConfig
from spikefm.train.data import SpikeDataModule, load_recordings
from spikefm.train.module import SpikeModule

__all__ = ["FitResult", "fit", "build_module", "load_checkpoint"]


@dataclass
class FitResult:
    """What a training run leaves behind.

    Attributes:
        module: the trained Lightning module (model + objective).
        run_dir: folder with ``checkpoints/``, ``metrics.csv`` logs and ``recipe.json``.
        recordings: the recordings it trained on.
        dataset: the synthetic dataset (ground truth) when the data was synthetic, else None.
        checkpoint: path of the last checkpoint.
    """

    module: SpikeModule
    run_dir: Path
    recordings: list[Recording]
    dataset: Any
    checkpoint: Path


def build_module(config: RunConfig, recordings: list[Recording]) -> tuple[SpikeModule, ModelSpec, Any]:
    """Model + objective + tokenizer for a recipe, sized from ``recordings``."""
    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    sizes = spec.sizes_from_data(recordings, model_config)
    model = spec.model_cls(model_config, **sizes)
    module = SpikeModule(
        model=model, objective=spec.objective, trainer=config.trainer, run_config=config.to_dict(), data_sizes=sizes
    )
    tokenizer = spec.make_tokenizer(model_config, **config.tokenizer)
    return module, spec, tokenizer


def _quiet_lightning() -> None:
    # Lightning's banner lines ("GPU available...", tips) and its small-epoch logging warning
    # drown the progress bar in short CPU runs; real warnings still come through.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.accelerators.cuda").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
    for message in (".*is smaller than the logging interval.*", ".*LeafSpec.*is deprecated.*",
                    ".*does not have many workers.*", ".*litlogger.*"):
        warnings.filterwarnings("ignore", message=message)


def _precision(config: RunConfig) -> str:
    if config.trainer.precision != "auto":
        return config.trainer.precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


def fit(
    config: RunConfig, *, recordings: list[Recording] | None = None, dataset: Any = None,
    callbacks: list[L.Callback] | None = None,
) -> FitResult:
    """Train the recipe's model; returns the trained module and where its run was written.

    Args:
        config: the recipe.
        recordings: train on these instead of the recipe's ``data`` section (``dataset`` may
            carry their synthetic ground truth).
        callbacks: extra Lightning callbacks (e.g. a search's pruner reading ``val/loss``).
    """
    _quiet_lightning()
    L.seed_everything(config.trainer.seed, workers=True, verbose=False)
    if recordings is None:
        recordings, dataset = load_recordings(config.data, seed=config.trainer.seed)
    module, spec, tokenizer = build_module(config, recordings)
    cfg = config.trainer
    run_dir = Path(cfg.out_dir) / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))
    data = SpikeDataModule(
        recordings, tokenizer, data=config.data, batch_size=cfg.batch_size, seed=cfg.seed,
        num_workers=cfg.num_workers, pack=spec.pack,
    )
    own_callbacks, best = _callbacks(cfg, run_dir / "checkpoints")
    trainer = L.Trainer(
        max_steps=cfg.max_steps,
        max_epochs=-1,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=_precision(config),
        gradient_clip_val=cfg.grad_clip or None,
        val_check_interval=min(cfg.val_every, cfg.max_steps),
        check_val_every_n_epoch=None,
        logger=_loggers(run_dir),
        callbacks=own_callbacks + list(callbacks or []),
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        use_distributed_sampler=False,  # spikefm samplers shard windows by rank themselves
        log_every_n_steps=max(1, min(10, cfg.max_steps // 10)),
        num_sanity_val_steps=0,
        deterministic=False,
    )
    # Vocabularies are fixed while a strategy may wrap the model (DDP cannot follow a replaced parameter).
    fix_vocabularies(module.model)
    try:
        trainer.fit(module, datamodule=data)
    finally:
        fix_vocabularies(module.model, fixed=False)
    checkpoint = run_dir / "checkpoints" / "final.ckpt"
    if best is not None and best.best_model_path:
        # The best validation's weights (already the averaged ones under EMA) become the result.
        shutil.copyfile(best.best_model_path, checkpoint)
        module.load_state_dict(torch.load(checkpoint, map_location=module.device, weights_only=False)["state_dict"])
    else:
        trainer.save_checkpoint(checkpoint)
    return FitResult(module=module, run_dir=run_dir, recordings=recordings, dataset=dataset, checkpoint=checkpoint)


def _callbacks(cfg, checkpoint_dir: Path) -> tuple[list, ModelCheckpoint | None]:
    """Checkpointing, early stopping, weight averaging; and the best-model checkpoint, if asked."""
    callbacks: list = [ModelCheckpoint(dirpath=checkpoint_dir, filename="last", save_last=False)]
    if cfg.early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor="val/loss", patience=cfg.early_stopping_patience, mode="min"))
    if cfg.ema_decay > 0:
        # Parameters only (buffers such as rotary tables are not averaged), from the end of the
        # warm-up, and always including the last step, so a short run never returns its initial weights.
        callbacks.append(EMAWeightAveraging(decay=cfg.ema_decay, use_buffers=False,
                                            update_starting_at_step=min(cfg.warmup_steps, cfg.max_steps - 1)))
    best = None
    if cfg.keep_best:
        best = ModelCheckpoint(dirpath=checkpoint_dir, filename="best", monitor=cfg.keep_best, mode="min", save_top_k=1)
        callbacks.append(best)
    return callbacks, best


def _loggers(run_dir: Path) -> list:
    loggers: list = [CSVLogger(run_dir, name="", version="logs")]
    if importlib.util.find_spec("tensorboard") is not None:  # optional: TensorBoard logs when installed
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="", version="tb"))
    return loggers


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[SpikeModule, RunConfig]:
    """Rebuild a trained module from a checkpoint alone (recipe and data sizes are stored in it)."""
    checkpoint = torch.load(path, map_location=map_location, weights_only=False)
    hparams = checkpoint["hyper_parameters"]
    config = RunConfig.from_dict(_plain(hparams["run_config"]))
    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    model = spec.model_cls(model_config, **hparams["data_sizes"])
    module = SpikeModule(model=model, objective=spec.objective, trainer=config.trainer,
                         run_config=config.to_dict(), data_sizes=hparams["data_sizes"])
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    return module, config


def _plain(raw: dict) -> dict:
    # Checkpoints store the recipe as nested dicts; drop nothing, just make sure it is plain.
    return json.loads(json.dumps(raw, default=str))
