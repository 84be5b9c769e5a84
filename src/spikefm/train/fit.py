"""``fit(recipe)``: build data, tokenizer, model and objective from a recipe and train them.

The same call runs on a laptop CPU and on many GPUs (``trainer.devices``, ``trainer.strategy:
ddp``); checkpoints carry the recipe, the data sizes and the training recordings' unit ids so
:func:`load_checkpoint` rebuilds the model without the data. Checkpoints are read with
``weights_only=True`` (:mod:`spikefm.train.checkpoints`): loading one never runs code.

Each run gets a folder of its own (``out_dir/<name>``, else ``<name>-1``, ``<name>-2``, ...), so
re-running a recipe never overwrites an earlier run; ``fit(..., resume=RUN_DIR or CKPT)``
continues a stopped run in its folder, exactly (:mod:`spikefm.train.resume`).
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint

from spikefm.data.recording import Recording
from spikefm.models.registry import ModelSpec, build_config, get_spec
from spikefm.nn.bf16_matmul import use_bf16_matmuls
from spikefm.nn.identity import fix_vocabularies
from spikefm.train.checkpoints import CheckpointError, safe_load, unit_ids_of
from spikefm.train.config import BF16_MATMUL, RunConfig
from spikefm.train.data import SpikeDataModule, load_recordings
from spikefm.train.module import SpikeModule
from spikefm.train.progress import StepProgress
from spikefm.train.resume import (
    ResumableCSVLogger, ResumeCheckpoint, TrainingInterrupted, resolve_resume, truncate_metrics,
)
from spikefm.train.threads import set_threads

__all__ = ["FitResult", "fit", "build_module", "load_checkpoint", "checkpoint_config"]


@dataclass
class FitResult:
    """What a training run leaves behind.

    Attributes:
        module: the trained Lightning module (model + objective).
        run_dir: folder with ``checkpoints/``, ``metrics.csv`` logs and ``recipe.json``.
        recordings: the recordings it trained on.
        dataset: the synthetic dataset (ground truth) when the data was synthetic, else None.
        checkpoint: ``checkpoints/final.ckpt``; after an interruption, ``checkpoints/last.ckpt``
            to resume from.
        interrupted: training stopped early on SIGTERM / SIGINT (resume with ``resume=run_dir``).
    """

    module: SpikeModule
    run_dir: Path
    recordings: list[Recording]
    dataset: Any
    checkpoint: Path
    interrupted: bool = False


def build_module(config: RunConfig, recordings: list[Recording]) -> tuple[SpikeModule, ModelSpec, Any]:
    """Model + objective + tokenizer for a recipe, sized from ``recordings`` (with ``precision: bf16-matmul``, its
    linears multiply in bf16)."""
    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    sizes = spec.sizes_from_data(recordings, model_config)
    model = spec.model_cls(model_config, **sizes)
    module = SpikeModule(
        model=model, objective=spec.objective, trainer=config.trainer, run_config=config.to_dict(), data_sizes=sizes,
        unit_ids=unit_ids_of(recordings),
    )
    if config.trainer.precision == BF16_MATMUL:
        use_bf16_matmuls(module)
    tokenizer = spec.make_tokenizer(model_config, **config.tokenizer)
    return module, spec, tokenizer


def _quiet_lightning() -> None:
    # Lightning's banner lines ("GPU available...", tips) and its small-epoch logging warning
    # drown the progress bar in short CPU runs; real warnings still come through.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.accelerators.cuda").setLevel(logging.WARNING)
    logging.getLogger("lightning.pytorch.trainer.connectors.checkpoint_connector").setLevel(logging.WARNING)
    for message in (".*is smaller than the logging interval.*", ".*LeafSpec.*is deprecated.*",
                    ".*does not have many workers.*", ".*litlogger.*",
                    # resuming mid-epoch is exact here: the data module skips the epoch's used batches
                    ".*dataloader is not resumable.*", ".*Experiment logs directory.*exists and is not empty.*"):
        warnings.filterwarnings("ignore", message=message)


def _precision(config: RunConfig) -> str:
    """Lightning's precision for the recipe's: ``bf16-matmul`` is a float32 run whose linears multiply in bf16."""
    if config.trainer.precision == BF16_MATMUL:
        return "32-true"
    if config.trainer.precision != "auto":
        return config.trainer.precision
    return "bf16-mixed" if torch.cuda.is_available() else "32-true"


def fit(
    config: RunConfig, *, recordings: list[Recording] | None = None, dataset: Any = None,
    resume: str | Path | None = None, callbacks: Sequence[L.Callback] | None = None,
) -> FitResult:
    """Train the recipe's model; returns the trained module and where its run was written.

    Args:
        config: the recipe.
        recordings: train on these instead of the recipe's ``data`` section (``dataset`` may
            carry their synthetic ground truth).
        resume: a run folder (its ``checkpoints/last.ckpt``) or a checkpoint to continue from;
            the run continues in that folder. With the same recipe it ends exactly as an
            uninterrupted run would (see :mod:`spikefm.train.resume`).
        callbacks: extra Lightning callbacks (e.g. a search's pruner reading ``val/loss``, or a
            recorder of the loss across DDP ranks).
    """
    _quiet_lightning()
    cfg = config.trainer
    set_threads(cfg.threads, cfg.accelerator, cfg.devices)
    checkpoint_path, run_dir = resolve_resume(resume) if resume is not None else (None, None)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if recordings is None:
        recordings, dataset = load_recordings(config.data, seed=cfg.seed)
    module, spec, tokenizer = build_module(config, recordings)
    run_dir = run_dir or _fresh_run_dir(Path(cfg.out_dir), config.name)
    if checkpoint_path is not None:  # rows the stopped run logged after its checkpoint are logged again
        truncate_metrics(run_dir / "logs" / "metrics.csv", int(safe_load(checkpoint_path)["global_step"]))
    (run_dir / "recipe.json").write_text(json.dumps(config.to_dict(), indent=2, default=str))
    data = SpikeDataModule(
        recordings, tokenizer, data=config.data, batch_size=cfg.batch_size, seed=cfg.seed,
        num_workers=cfg.num_workers, pack=spec.pack,
    )
    own_callbacks, best = _callbacks(cfg, run_dir / "checkpoints")
    log_every = max(1, min(10, cfg.max_steps // 10))
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
        logger=_loggers(run_dir, log_every),
        callbacks=[*own_callbacks, *(callbacks or ())],
        enable_progress_bar=cfg.progress,
        enable_model_summary=False,
        use_distributed_sampler=False,  # spikefm samplers shard windows by rank themselves
        log_every_n_steps=log_every,
        num_sanity_val_steps=0,
        deterministic=False,
    )
    # Vocabularies are fixed while a strategy may wrap the model (DDP cannot follow a replaced parameter).
    fix_vocabularies(module.model)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=checkpoint_path, weights_only=True)
    except TrainingInterrupted as stop:
        return FitResult(module=module, run_dir=run_dir, recordings=recordings, dataset=dataset,
                         checkpoint=stop.checkpoint, interrupted=True)
    finally:
        fix_vocabularies(module.model, fixed=False)
    checkpoint = run_dir / "checkpoints" / "final.ckpt"
    if best is not None and best.best_model_path:
        # The best validation's weights (already the averaged ones under EMA) become the result.
        shutil.copyfile(best.best_model_path, checkpoint)
        module.load_state_dict(safe_load(checkpoint, map_location=module.device)["state_dict"])
    else:
        trainer.save_checkpoint(checkpoint)
    return FitResult(module=module, run_dir=run_dir, recordings=recordings, dataset=dataset, checkpoint=checkpoint)


def _fresh_run_dir(out_dir: Path, name: str) -> Path:
    """``out_dir/name``, or ``name-1``, ``name-2``, ...: the first that does not exist yet (created here)."""
    chosen = os.environ.get("SPIKEFM_RUN_DIR")
    if chosen and os.environ.get("LOCAL_RANK", "0") != "0":
        return Path(chosen)  # a DDP process Lightning started: use the folder rank 0 created
    out_dir.mkdir(parents=True, exist_ok=True)
    for version in itertools.count():
        run_dir = out_dir / (name if version == 0 else f"{name}-{version}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        os.environ["SPIKEFM_RUN_DIR"] = str(run_dir)  # inherited by the DDP processes Lightning launches
        return run_dir
    raise AssertionError("unreachable")


def _callbacks(cfg, checkpoint_dir: Path) -> tuple[list, ModelCheckpoint | None]:
    """Checkpoints to resume from, progress, early stopping, weight averaging; and the best-model checkpoint, if asked."""
    callbacks: list = [ResumeCheckpoint(checkpoint_dir, every=cfg.checkpoint_every)]
    if cfg.progress:
        callbacks.append(StepProgress())
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


def _loggers(run_dir: Path, flush_every: int) -> list:
    # Flushed every logging step, so a killed run keeps its curve up to (nearly) the kill.
    loggers: list = [ResumableCSVLogger(run_dir, name="", version="logs", flush_logs_every_n_steps=flush_every)]
    if importlib.util.find_spec("tensorboard") is not None:  # optional: TensorBoard logs when installed
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(run_dir, name="", version="tb"))
    return loggers


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[SpikeModule, RunConfig]:
    """Rebuild a trained module from a checkpoint alone (recipe, data sizes and unit ids are stored in it).

    The file is read with ``weights_only=True``: a checkpoint that would run code is refused.
    ``module.hparams["unit_ids"]`` holds the training recordings' unit ids per session (check
    recordings against them with :func:`spikefm.train.checkpoints.check_unit_ids`).

    Raises:
        CheckpointError: missing, unreadable, unsafe, or not written by ``spikefm train``.
    """
    checkpoint = safe_load(path, map_location=map_location)
    config = _run_config(checkpoint, path)
    hparams = checkpoint["hyper_parameters"]
    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    model = spec.model_cls(model_config, **hparams["data_sizes"])
    module = SpikeModule(model=model, objective=spec.objective, trainer=config.trainer,
                         run_config=config.to_dict(), data_sizes=hparams["data_sizes"],
                         unit_ids=hparams.get("unit_ids"))
    module.load_state_dict(checkpoint["state_dict"])
    module.eval()
    return module, config


def checkpoint_config(path: str | Path) -> RunConfig:
    """The recipe a checkpoint (or a run folder's ``checkpoints/last.ckpt``) was trained with."""
    checkpoint_path, _ = resolve_resume(path)
    return _run_config(safe_load(checkpoint_path), checkpoint_path)


def _run_config(checkpoint: dict, path: str | Path) -> RunConfig:
    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "run_config" not in hparams or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a `spikefm train` checkpoint (it stores no spikefm recipe)")
    return RunConfig.from_dict(_plain(hparams["run_config"]))


def _plain(raw: dict) -> dict:
    # Checkpoints store the recipe as nested dicts; drop nothing, just make sure it is plain.
    return json.loads(json.dumps(raw, default=str))
