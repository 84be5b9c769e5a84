"""Pretrain on a corpus and ship the model; fine-tune a shipped model on a new session, in a new process.

``pretrain(recipe, corpus=...)`` trains a recipe's model (Lightning, any number of devices) on the
corpus's sessions and writes it with :func:`~spikefm.models.pretrained.save_pretrained`.
``finetune(source, data, mode=...)`` loads that folder (or a training checkpoint), adapts it to an
unseen session by the transfer protocol of :mod:`spikefm.eval.transfer` (the same code path as
``spikefm transfer``), and scores it on that session's test trials.

Modes (``finetune --mode``) and the transfer conditions they run:

============  ==============  ==============================================================
mode          condition       what moves
============  ==============  ==============================================================
zero-shot     ``zero_shot``   nothing (SPINT-style models: one IDEncoder pass over k trials)
recalibrate   ``recalibrate`` the new session's rows (POYO family, NDT2/3), stitchers (MtM, NEDS)
head          ``head``        the output head (+ the new session's rows where there are any)
full          ``finetune``    every parameter
============  ==============  ==============================================================

>>> result = pretrain(load_recipe("configs/poyo_tiny.yaml"), corpus="runs/corpus")  # doctest: +SKIP
>>> finetune(result.pretrained_dir, "new_session.h5", mode="recalibrate", trials=16).row.score  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from spikefm.data.recording import Recording
from spikefm.eval.transfer import TransferConfig, TransferRow, _ModelRun
from spikefm.models.pretrained import Pretrained, from_pretrained, is_pretrained_dir, save_pretrained
from spikefm.models.registry import build_config, get_spec
from spikefm.train.config import RunConfig

__all__ = ["MODES", "PretrainResult", "FinetuneResult", "pretrain", "finetune", "load_pretrained"]

MODES = {"zero-shot": "zero_shot", "recalibrate": "recalibrate", "head": "head", "full": "finetune"}


@dataclass
class PretrainResult:
    """Where a pretraining run went: its run folder, the shipped model folder (rank 0 only), the fit."""

    run_dir: Path
    pretrained_dir: Path | None
    fit: Any


@dataclass
class FinetuneResult:
    """One adapted model: its score row, the model, and where it was saved (if asked)."""

    row: TransferRow
    model: torch.nn.Module
    out_dir: Path | None


def _global_rank() -> int:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", os.environ.get("GLOBAL_RANK", "0")))


def _last_metrics(run_dir: Path) -> dict[str, float]:
    """The last logged value of each val/ metric in the run's CSV log."""
    found: dict[str, float] = {}
    for path in sorted(run_dir.glob("**/metrics.csv")):
        with path.open() as handle:
            for row in csv.DictReader(handle):
                found.update({k: float(v) for k, v in row.items() if k.startswith("val/") and v not in ("", None)})
    return found


def pretrain(config: RunConfig, *, corpus: Any = None, out: str | Path | None = None) -> PretrainResult:
    """Train ``config``'s model on ``corpus`` (or the recipe's data) and save it with ``save_pretrained``.

    Args:
        config: a training recipe (``trainer.devices`` / ``trainer.strategy`` choose DDP).
        corpus: a :class:`~spikefm.data.corpus.Corpus`, or a folder / manifest to open as one;
            None uses the recipe's ``data`` section. ``data.sessions`` selects a sub-corpus.
        out: the pretrained folder; default ``<run_dir>/pretrained``.
    """
    from spikefm.data.corpus import Corpus
    from spikefm.train.fit import fit

    recordings = None
    if corpus is not None:
        corpus = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
        if config.data.sessions:
            corpus = corpus.select(config.data.sessions)
        recordings = corpus.recordings
    result = fit(config, recordings=recordings)
    if _global_rank() != 0:  # under DDP every rank returns here; one writes
        return PretrainResult(result.run_dir, None, result)
    model = result.module.model
    target = Path(out) if out is not None else result.run_dir / "pretrained"
    sessions = [r.session for r in result.recordings]
    save_pretrained(
        model, target, name=config.model.name, data_sizes=dict(result.module.hparams["data_sizes"]),
        tokenizer_overrides=config.tokenizer, sessions=sessions, scores=_last_metrics(result.run_dir),
        notes=f"recipe {config.name}: {config.trainer.max_steps} steps, batch {config.trainer.batch_size}, "
              f"lr {config.trainer.lr}, devices {config.trainer.devices}",
    )
    return PretrainResult(result.run_dir, target, result)


def load_pretrained(source: str | Path) -> Pretrained:
    """A pretrained folder (``save_pretrained``) or a training checkpoint (``spikefm train``) as :class:`Pretrained`."""
    source = Path(source)
    if is_pretrained_dir(source):
        return from_pretrained(source)
    if source.is_file():
        from spikefm.train.fit import load_checkpoint

        module, config = load_checkpoint(source)
        model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
        return Pretrained(module.model, config.model.name, model_config, dict(module.hparams["data_sizes"]),
                          dict(config.tokenizer), {"sessions": [], "notes": f"from checkpoint {source}"})
    raise FileNotFoundError(f"{source}: neither a pretrained folder (config.json + model.safetensors) nor a checkpoint")


def _merge_sizes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Data sizes covering the pretraining sessions and a new one: lists appended, dicts merged."""
    merged = dict(old)
    for key, value in new.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, list):
            merged[key] = list(merged[key]) + [v for v in value if v not in merged[key]]
        elif isinstance(value, dict):
            merged[key] = _merge_sizes(merged[key], value)
    return merged


def finetune(
    source: str | Path | Pretrained,
    data: str | Path | Recording,
    *,
    mode: str = "recalibrate",
    trials: int = 16,
    settings: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    log: Callable[[str], None] = print,
) -> FinetuneResult:
    """Adapt a pretrained model to the session in ``data`` and score it on that session's test trials.

    Args:
        source: a pretrained folder, a training checkpoint, or a loaded :class:`Pretrained`.
        data: the new session (any file :func:`spikefm.data.store.load` reads, or a Recording);
            it needs trials with a ``split`` column; its first ``trials`` train trials are used.
        mode: one of :data:`MODES`.
        trials: k, the number of the new session's train trials the adaptation may read.
        settings: :class:`~spikefm.eval.transfer.TransferConfig` fields (``adapt_steps``, ``adapt_lr``,
            ``recalibrate_lr``, ``batch_size``, ``window``, ``seed``, ``weight_decay``).
        out: save the adapted model here (``save_pretrained``), with its score on the card.

    Raises:
        ValueError: an unknown mode, or a mode the model cannot do (e.g. zero-shot without ``calibrate``).
    """
    if mode not in MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; choose from {list(MODES)}")
    pretrained = source if isinstance(source, Pretrained) else load_pretrained(source)
    if isinstance(data, Recording):
        target = data
    else:
        from spikefm.data.store import load

        target = load(data)
    condition = MODES[mode]
    config = TransferConfig.from_dict({**dict(settings or {}), "models": [pretrained.name],
                                       "calibration_trials": [trials], "conditions": [condition]})
    if config.threads:
        torch.set_num_threads(config.threads)
    run = _ModelRun(pretrained.name, config, [], target, log, model_config=pretrained.config)
    if pretrained.tokenizer_overrides:  # the tokenizer the model was pretrained with, not the default one
        run.tokenizer = pretrained.tokenizer()
        run.target_windows = [run.tokenizer(target.window(t0, t0 + config.window))
                              for t0 in target.trials.start[run.pool[:trials]]]
    row = run.run_condition(pretrained.model, condition, trials)
    if row is None:
        raise ValueError(f"{pretrained.name} cannot be adapted by mode {mode!r} (e.g. zero-shot needs a model with "
                         "calibrate(recording, trials); recalibrate needs add_session + freeze_for_recalibration)")
    model = run.last_model
    log(f"{pretrained.name} {mode} on {target.session} with k={trials}: {row.metric} {row.score:.4f} "
        f"({row.steps} steps, {row.seconds:.1f} s)")
    out_dir = None
    if out is not None:
        sizes = _merge_sizes(pretrained.data_sizes, get_spec(pretrained.name).sizes_from_data([target], pretrained.config))
        sessions = [*pretrained.card.get("sessions", []), target.session]
        out_dir = save_pretrained(model, out, name=pretrained.name, data_sizes=sizes, config=pretrained.config,
                                  tokenizer_overrides=pretrained.tokenizer_overrides, sessions=sessions,
                                  scores={f"{target.session} test {row.metric} ({mode}, k={trials})": row.score},
                                  notes=f"{mode} on {target.session} from {source if not isinstance(source, Pretrained) else pretrained.name}")
    return FinetuneResult(row, model, out_dir)
