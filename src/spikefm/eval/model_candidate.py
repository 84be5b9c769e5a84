"""A registered model as a protocol candidate: trained with :func:`spikefm.train.fit.fit`, tuned on val.

The search space covers what used to be picked by hand: learning rate, weight decay, training steps,
an EMA of the weights, and which checkpoint is kept (the last, or the best by ``val/loss``). During a
search every validation check reports ``-val/loss`` to the study's pruner, which stops runs that fall
behind (median / successive halving). The selected configuration is the one with the best validation
*metric*; its seeds train without pruning.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from spikefm.data.recording import Recording
from spikefm.data.splits import merge_split_runs
from spikefm.eval.cache import cache_key
from spikefm.eval.candidates import (Reporter, ScoredBySplit, Task, TrialScores, config_key, decoding_inputs, inputs_key,
                                    predicted_decoder_scores, predicted_heldout_scores)
from spikefm.eval.metrics import CO_BPS
from spikefm.eval.sealed import fingerprint
from spikefm.eval.evaluate import predict

__all__ = ["ModelCandidate"]

# Bumped when a searched knob starts (or stops) reaching the trainer, so cached runs of the old code are not reused:
# 2 = ema_decay is passed to the trainer (format 1 left it in a comment, so the EMA knob was a no-op);
# 3 = on a continuous recording, random training windows for every model and a validation loss over every val block
# (format 2 trained "trials"-sampler models on one window and validated every model on one window).
FIT_FORMAT = 3


class _ReportValLoss(L.Callback):
    """Passes ``-val/loss`` after each validation to ``report`` (which may raise optuna's TrialPruned)."""

    def __init__(self, report: Reporter) -> None:
        self.report = report

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        loss = trainer.callback_metrics.get("val/loss")
        if loss is not None and not trainer.sanity_checking:
            self.report(int(trainer.global_step), -float(loss))


def config_fields(model: str, preset: str = "tiny") -> set[str]:
    """The field names of ``model``'s config (what an override may set)."""
    from dataclasses import fields

    from spikefm.models.registry import build_config

    return {f.name for f in fields(build_config(model, preset))}


def _behavior_override(model: str, preset: str, key: str) -> dict[str, Any]:
    """The config override that makes ``model`` decode ``key``: ``behavior_key``, or ``behavior_keys`` (a
    multi-task decoder such as unified, whose first key is the one ``behavior`` decodes)."""
    names = config_fields(model, preset)
    if "behavior_keys" in names and "behavior_key" not in names:
        return {"behavior_keys": [key]}
    return {"behavior_key": key}


@dataclass
class ModelCandidate(ScoredBySplit):
    """Registered model ``model`` (preset ``preset`` + ``overrides``) trained on the dev train split.

    Args:
        model: registry name (``spikefm.models.list_models()``).
        task: what is scored (see :class:`~spikefm.eval.candidates.Task`).
        max_steps: the longest training run the search may choose (the budget sets it).
        sampler: "trials" (trial-aligned windows) or "random" (windows anywhere in the train split).
        batch_size: windows per step.
        overrides: fixed model config overrides (not searched).
        lr, weight_decay: search ranges (log-uniform).
        out_dir: where training runs write their folders (a temporary folder by default).
        train_window: seconds per training window when it differs from the scored ``task.window`` (Neuroformer
            trains on 100 ms past + current chunks and is scored over whole trials).
    """

    model: str
    task: Task
    max_steps: int = 600
    sampler: str = "trials"
    batch_size: int = 32
    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)
    lr: tuple[float, float] = (5e-4, 5e-3)
    weight_decay: tuple[float, float] = (1e-3, 0.1)
    out_dir: Path | None = None
    train_window: float | None = None
    deterministic: bool = False

    def __post_init__(self) -> None:
        self.name, self.metric = self.model, self.task.metric
        from spikefm.models.registry import build_config, is_causal

        self.causal = is_causal(self.model, build_config(self.model, self.preset, **self.overrides))
        self.info = ("causal" if self.causal else f"acausal, reads its {self.task.window:g} s window")
        if self.task.continuous and self.sampler == "trials":
            # a continuous recording's train split is one merged run (fit: merge_split_runs), so trial-start windows
            # would be one window seen every step; random windows cover the run (found on M1, 2026-12-04)
            self.sampler = "random"
        if self.out_dir is None:
            self.out_dir = Path(tempfile.mkdtemp(prefix=f"spikefm-bench-{self.model}-"))

    def key(self) -> dict[str, Any]:
        from spikefm.models.registry import build_config

        return {"kind": "model", "model": self.model, "preset": self.preset, "overrides": self.overrides,
                "task": self.task.__dict__, "max_steps": self.max_steps, "sampler": self.sampler,
                "batch_size": self.batch_size, "space": [self.lr, self.weight_decay],
                "fit_format": FIT_FORMAT, **({"train_window": self.train_window} if self.train_window else {}),
                **inputs_key(self.metric), **config_key(build_config(self.model, self.preset, **self.overrides))}

    def default(self) -> dict[str, Any]:
        """The tiny recipes' trainer settings at the budget's step count."""
        return {"lr": 2e-3, "weight_decay": 0.01, "steps": self.max_steps, "ema_decay": 0.0, "keep_best": ""}

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {
            "lr": trial.suggest_float("lr", *self.lr, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *self.weight_decay, log=True),
            "steps": trial.suggest_categorical("steps", [max(self.max_steps // 2, 1), self.max_steps]),
            "ema_decay": trial.suggest_categorical("ema_decay", [0.0, 0.99]),
            "keep_best": trial.suggest_categorical("keep_best", ["", "val/loss"]),
        }

    def _config(self, params: dict[str, Any], seed: int, data: str = "", has_behavior: bool = True):
        from spikefm.train.config import RunConfig

        steps = int(params["steps"])
        overrides = dict(self.overrides)
        if not has_behavior and "behavior_keys" in config_fields(self.model, self.preset):
            overrides.setdefault("behavior_keys", [])  # e.g. an NLB test file: train without behaviour readouts
        if self.task.behavior_key is not None and self.task.metric != CO_BPS:
            for name, value in _behavior_override(self.model, self.preset, self.task.behavior_key).items():
                overrides.setdefault(name, value)
        return RunConfig.from_dict({
            "name": f"{self.model}-seed{seed}-" + cache_key(params=params, data=data)[:8],  # one folder per run
            "model": {"name": self.model, "preset": self.preset, "overrides": overrides},
            "data": {"window": self.train_window or self.task.window, "sampler": self.sampler, "windows_per_epoch": 512},
            "trainer": {"max_steps": steps, "batch_size": self.batch_size, "lr": params["lr"],
                        "weight_decay": params["weight_decay"], "warmup_steps": min(100, max(steps // 10, 1)),
                        "val_every": max(self.max_steps // 4, 1),  # same steps for every trial (pruner)
                        "ema_decay": params["ema_decay"],
                        "keep_best": params["keep_best"], "seed": seed, "out_dir": str(self.out_dir),
                        "progress": False, "threads": torch.get_num_threads()},  # the process's (bench --threads)
        })

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None):
        from spikefm.models.registry import build_config, get_spec
        from spikefm.train.fit import fit

        dev = decoding_inputs(dev, self.metric)  # a decoding row reads every unit, as its baselines do
        config = self._config(params, seed, fingerprint(dev), has_behavior=bool(dev.behavior))
        # random training windows may straddle train blocks; validation reads each val block (pruner, keep_best)
        train_on = merge_split_runs(dev, splits=("train",)) if self.task.continuous else dev
        callbacks = [_ReportValLoss(report)] if report is not None else []
        result = fit(config, recordings=[train_on], callbacks=callbacks)
        if result.interrupted:  # a stopped run must not be validated, scored or cached as if it had finished
            raise KeyboardInterrupt(f"{self.model}: training stopped by a signal (run folder {result.run_dir})")
        spec = get_spec(self.model)
        tokenizer = spec.make_tokenizer(build_config(self.model, self.preset, **config.model.overrides))
        return {"model": result.module.model, "tokenizer": tokenizer, "pack": spec.pack}

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        out = predict(fitted["model"], fitted["tokenizer"], rec, split=split, window=self.task.window,
                      pack=fitted["pack"])
        if self.metric == CO_BPS:
            return predicted_heldout_scores(self.metric, out, rec.session)
        return predicted_decoder_scores(self.metric, out)
