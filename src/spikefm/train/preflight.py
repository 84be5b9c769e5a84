"""Checks that run before any data is read or any step is taken, so a mistake costs seconds, not a run.

Each raises :class:`~spikefm.train.config.ConfigError` naming the recipe key (or command option),
the value and what would be accepted. ``spikefm train`` calls :func:`check_recipe`; ``spikefm eval``
calls :func:`check_writable_file` for ``--out``, :func:`read_checkpoint` and :func:`check_split`.

>>> from spikefm.train.config import RunConfig
>>> check_recipe(RunConfig.from_dict({"model": {"name": "ndt9"}}))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
spikefm.train.config.ConfigError: model.name: unknown model 'ndt9'; available: ...
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path
from typing import Any, Sequence

from spikefm.train.config import ConfigError, RunConfig, TrainerConfig

__all__ = ["check_recipe", "check_model", "check_writable_dir", "check_writable_file", "check_split", "read_checkpoint"]


def check_recipe(config: RunConfig) -> None:
    """Model, preset, overrides, tokenizer keys, data paths, output folder and accelerator of a recipe."""
    check_model(config)
    for path in config.data.paths:
        if not Path(path).exists():
            raise ConfigError(f"data.paths: {path} not found (relative paths are read from {Path.cwd()})")
    check_writable_dir(Path(config.trainer.out_dir), "trainer.out_dir")
    check_accelerator(config.trainer)


def check_model(config: RunConfig) -> Any:
    """The model config the recipe builds; a bad name, preset, override or tokenizer key is a ConfigError."""
    from spikefm.models.registry import build_config, get_spec

    section = config.model
    try:
        spec = get_spec(section.name)
    except KeyError as error:
        raise ConfigError(f"model.name: {error.args[0]}") from None
    if section.preset not in spec.presets:
        raise ConfigError(f"model.preset: model '{section.name}' has no preset '{section.preset}'; "
                          f"presets: {', '.join(spec.presets)}")
    try:
        model_config = build_config(section.name, section.preset, **section.overrides)
    except (KeyError, ValueError, TypeError) as error:
        raise ConfigError(f"model.overrides: {error.args[0] if error.args else error}") from None
    _check_tokenizer(spec, model_config, config.tokenizer)
    return model_config


def _check_tokenizer(spec: Any, model_config: Any, overrides: dict[str, Any]) -> None:
    try:
        spec.make_tokenizer(model_config, **overrides)
    except TypeError as error:  # an unknown keyword: list the ones the tokenizer's config takes
        default = getattr(spec.make_tokenizer(model_config), "config", None)
        known = sorted(f.name for f in dataclasses.fields(default)) if dataclasses.is_dataclass(default) else []
        unknown = sorted(set(overrides) - set(known)) if known else []
        what = f"unknown key(s) {unknown} for model '{spec.name}'" if unknown else str(error)
        raise ConfigError(f"tokenizer: {what}; known: {known}") from None
    except (KeyError, ValueError) as error:
        raise ConfigError(f"tokenizer: {error.args[0] if error.args else error}") from None


def check_writable_dir(folder: Path, what: str) -> None:
    """``folder`` exists (created if needed) and a file can be written in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # a file can be created (and is removed on close)
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"{what}: cannot write into {folder} ({reason}); choose a folder you can write to") from None


def check_writable_file(path: Path, what: str) -> None:
    """``path`` can be written: its folder is writable and it is not a folder itself."""
    if path.is_dir():
        raise ConfigError(f"{what}: {path} is a folder; give a file name, e.g. {path / 'predictions.h5'}")
    check_writable_dir(path.parent, what)


def check_accelerator(trainer: TrainerConfig) -> None:
    """Lightning accepts ``accelerator``, ``devices`` and ``strategy`` on this machine (building its Trainer)."""
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    quiet = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # no "GPU available: ..." banner for a check
    try:
        L.Trainer(accelerator=trainer.accelerator, devices=trainer.devices, strategy=trainer.strategy, logger=False,
                  enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    except (MisconfigurationException, ValueError, RuntimeError) as error:
        raise ConfigError(
            f"trainer.accelerator={trainer.accelerator!r}, devices={trainer.devices!r}, "
            f"strategy={trainer.strategy!r} cannot run here: {' '.join(str(error).split())}"
        ) from None
    finally:
        quiet.setLevel(level)


def read_checkpoint(path: Path) -> tuple[Any, RunConfig]:
    """:func:`spikefm.train.fit.load_checkpoint`, with a file that is not a spikefm checkpoint a ConfigError."""
    import pickle

    from spikefm.train.checkpoints import CheckpointError
    from spikefm.train.fit import load_checkpoint

    if not path.is_file():
        raise ConfigError(f"checkpoint {path} not found; `spikefm train` writes RUN_DIR/checkpoints/final.ckpt")
    try:
        return load_checkpoint(path)
    except CheckpointError:  # already one clear line (e.g. a file whose unpickling would run code)
        raise
    except (pickle.UnpicklingError, RuntimeError, KeyError, ValueError, TypeError, EOFError, AttributeError) as error:
        reason = " ".join(str(error.args[0] if isinstance(error, KeyError) else error).split())[:300]
        raise ConfigError(
            f"{path} is not a readable spikefm checkpoint ({type(error).__name__}: {reason}); "
            "give a .ckpt written by `spikefm train` (RUN_DIR/checkpoints/final.ckpt)"
        ) from error


def check_split(recordings: Sequence[Any], split: str) -> None:
    """Every recording has trials labelled ``split``."""
    for rec in recordings:
        labels = [] if rec.trials is None else rec.trials.columns.get("split")
        names = sorted({str(v) for v in labels}) if labels is not None else []
        if split not in names:
            raise ConfigError(
                f"--split {split!r}: session '{rec.session}' has no trials in that split; "
                f"its splits are {names or 'none'}"
            )
