"""Transfer to an unseen session as protocol candidates: pretrain on a world's other sessions, adapt with k trials
of the new one, choose the adaptation on its validation trials, score its test trials once.

A *world* is a synthetic dataset of several sessions sharing one latent system (:class:`TransferWorld`); its last
session is the new one (the target), the others are pretraining sessions. The protocol hands a candidate only the
target (:func:`~spikefm.eval.sealed.seal` cuts its test trials); the candidate finds the world's pretraining
sessions by the target's name. Pretraining reads the pretraining sessions' train trials only, with one fixed,
declared recipe per model (:class:`Pretraining`; not searched, the same for every model); the search covers the
adaptation (learning rate and steps, where the condition has a gradient step). A pretrained model is kept in
memory per (model, world, seed), so every condition and k of one seed adapts the same weights.

Conditions (:data:`CONDITIONS`), all with the first k trials of the target's train split:

* ``zero_shot``: no gradient step and no label; identities from the k trials' spikes (SPINT, unified).
* ``recalibrate``: the new session's unit / session rows trained on the k labelled trials, the rest frozen (POYO).
* ``finetune``: every weight, from the pretrained ones, on the k labelled trials.

Baselines: the Wiener and Kalman filters fitted on the same k labelled trials
(:class:`~spikefm.eval.candidates.BaselineCandidate` with ``train_trials=k``): they read labels a zero-shot
model never sees.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch

from spikefm.data.recording import DataError, Recording
from spikefm.eval.candidates import (Reporter, ScoredBySplit, Task, TrialScores, config_key, decoding_inputs,
                                    inputs_key, predicted_decoder_scores)
from spikefm.eval.metrics import DECODE_R2

__all__ = ["CONDITIONS", "Pretraining", "TransferWorld", "TransferCandidate"]

CONDITIONS = ("zero_shot", "recalibrate", "finetune")


@dataclass(frozen=True)
class Pretraining:
    """The fixed pretraining recipe (:class:`~spikefm.eval.transfer.TransferConfig`'s defaults).

    ``sessions_per_batch`` sessions per batch, so SPINT's in-batch calibration has many same-session windows.
    """

    steps: int = 1000
    lr: float = 2e-3
    batch_size: int = 32
    sessions_per_batch: int = 2
    weight_decay: float = 0.01


@dataclass(frozen=True)
class TransferWorld:
    """Synthetic worlds: ``n_sessions`` sessions of one latent system; the last is the new (target) session.

    Sessions are named ``<system>w<seed>-<index>``, so worlds of different seeds never share a name.

    Zero-shot caveat: the Lorenz system is symmetric under (x, y, z) -> (-x, -y, z), so unlabeled spikes fix a unit's
    identity only up to that mirror; only the trials' shared condition states break the tie, and a few calibration
    trials can break it the wrong way, when a label-free model (SPINT, unified) decodes the mirrored behaviour
    (``benchmarks/calibration_sets.py``; docs/results/protocol.md, after the thirty-second sitting).
    """

    n_sessions: int = 5
    n_trials: int = 100
    units: tuple[int, int] = (40, 60)
    system: str = "lorenz"

    @classmethod
    def quick(cls) -> "TransferWorld":
        return cls(n_sessions=3, n_trials=30, units=(12, 12))

    def draw(self, seed: int) -> tuple[list[Recording], Recording]:
        """(pretraining sessions, target session) of world ``seed``."""
        from spikefm.data.synthetic import SyntheticConfig, generate

        config = SyntheticConfig(n_sessions=self.n_sessions, n_trials=self.n_trials, units_per_session=self.units,
                                 latent_system=self.system, seed=seed)
        recordings = [replace(r, session=f"{self.system}w{seed}-{i}") for i, r in enumerate(generate(config).recordings)]
        return recordings[:-1], recordings[-1]


_PRETRAINED: dict[tuple, torch.nn.Module] = {}  # (model, sessions' data, seed, recipe) -> pretrained model


def _train_trial_starts(rec: Recording, k: int | None = None) -> np.ndarray:
    from spikefm.eval.transfer import calibration_pool

    rows = calibration_pool(rec)
    if k is not None and rows.size < k:
        raise DataError(f"{rec.session}: {rows.size} train trials, fewer than k = {k}")
    return rec.trials.start[rows if k is None else rows[:k]]


def _rows_at(rec: Recording, starts: np.ndarray) -> list[int]:
    """Trial rows of ``rec`` starting at ``starts`` (the development recording renumbers its trials)."""
    rows = np.flatnonzero(np.isin(rec.trials.start, starts))
    if rows.size != starts.size:
        raise DataError(f"{rec.session}: calibration trials not found")
    return rows.tolist()


@dataclass
class TransferCandidate(ScoredBySplit):
    """``model`` pretrained on the target's world, adapted by ``condition`` with ``k`` trials; decode R2.

    Args:
        model: registry name (a decoder).
        condition: one of :data:`CONDITIONS`.
        k: trials of the target's train split the adaptation may use.
        task: the decoding task (window, bins, behaviour).
        sources: target session name -> its world's pretraining sessions.
        pretraining: the fixed pretraining recipe.
        preset: the model's preset.
        overrides: fixed config overrides of the preset: an ablation row, named ``<row> [key=value]`` so the
            protocol pairs it with the full row (:func:`~spikefm.eval.protocol.ablation_of`).
    """

    model: str
    condition: str
    k: int
    task: Task
    sources: dict[str, list[Recording]]
    pretraining: Pretraining = Pretraining()
    preset: str = "tiny"
    deterministic: bool = False
    overrides: dict[str, Any] = field(default_factory=dict)

    #: The registry task of the models this candidate transfers, and how a refusal names the others.
    model_task: ClassVar[str] = "decoding"
    refusal: ClassVar[str] = "does not decode behaviour"

    def __post_init__(self) -> None:
        from spikefm.models.registry import get_spec, is_causal, list_models

        if self.condition not in CONDITIONS:
            raise ValueError(f"unknown transfer condition {self.condition!r}; choose from {CONDITIONS}")
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        self.spec = get_spec(self.model)
        if self.spec.task != self.model_task:  # found before any pretraining
            fits = [name for name in list_models() if get_spec(name).task == self.model_task]
            raise ValueError(f"{self.model} {self.refusal} (task {self.spec.task!r}), so it has no "
                             f"{self.task.metric} transfer score; models that do: {', '.join(fits)}")
        self.config = self._model_config()
        probe = self.spec.model_cls  # the condition must be one the model supports
        needs = {"zero_shot": ("calibrate",), "recalibrate": ("add_session", "freeze_for_recalibration")}
        missing = [m for m in needs.get(self.condition, ()) if not hasattr(probe, m)]
        if missing:
            raise ValueError(f"{self.model} cannot run {self.condition}: it has no {', '.join(missing)}")
        from spikefm.eval.protocol import ablation_name

        self.name = ablation_name(f"{self.model} {self.condition} k={self.k}", self.overrides)
        self.metric = self.task.metric
        self.causal = is_causal(self.model, self.config)
        reads = {"zero_shot": f"{self.k} unlabeled trials of the new session, no gradient step",
                 "recalibrate": f"{self.k} labelled trials: the new session's rows trained, the rest frozen",
                 "finetune": f"{self.k} labelled trials: every weight fine-tuned"}[self.condition]
        self.info = f"{'causal' if self.causal else f'acausal ({self.task.window:g} s window)'}; {reads}"

    @property
    def train_trials(self) -> int:
        """k: compared with baselines fitted on the same k trials."""
        return self.k

    def _model_config(self):
        from spikefm.eval.model_candidate import _behavior_override
        from spikefm.models.registry import build_config

        return build_config(self.model, self.preset,
                            **{**_behavior_override(self.model, self.preset, self.task.behavior_key), **self.overrides})

    def key(self) -> dict[str, Any]:
        return {"kind": "model", "model": self.model, "preset": self.preset, "condition": self.condition,
                "k": self.k, "task": self.task.__dict__, "pretraining": self.pretraining.__dict__,
                "transfer_format": 1, **({"overrides": self.overrides} if self.overrides else {}),
                **inputs_key(self.metric), **config_key(self.config)}

    def default(self) -> dict[str, Any]:
        return {"zero_shot": {}, "recalibrate": {"lr": 1e-2, "steps": 200},
                "finetune": {"lr": 3e-3, "steps": 200}}[self.condition]

    def suggest(self, trial: Any) -> dict[str, Any]:
        if self.condition == "zero_shot":
            return {}
        low, high = (1e-3, 3e-2) if self.condition == "recalibrate" else (3e-4, 1e-2)
        return {"lr": trial.suggest_float("lr", low, high, log=True),
                "steps": trial.suggest_categorical("steps", [100, 200, 400])}

    # ------------------------------------------------------------------ pretraining
    def _pretrained(self, target: str, seed: int) -> torch.nn.Module:
        from spikefm.eval.transfer import _windows, calibration_pool, train_steps

        if target not in self.sources:
            raise KeyError(f"{self.name}: no pretraining sessions for target {target!r}")
        sources = [decoding_inputs(r, self.metric) for r in self.sources[target]]  # every unit, for a decoding row
        from spikefm.eval.sealed import fingerprint

        data = tuple((r.session, fingerprint(r)) for r in sources)  # names alone collide across world settings
        overrides = repr(sorted(self.overrides.items()))
        key = (self.model, self.preset, data, seed, self.pretraining, self.task.window, overrides)
        if key not in _PRETRAINED:
            torch.manual_seed(seed)
            model = self.spec.model_cls(self.config, **self.spec.sizes_from_data(sources, self.config))
            tokenizer = self.spec.make_tokenizer(self.config)
            windows = [w for rec in sources for w in _windows(rec, calibration_pool(rec), tokenizer, self.task.window)]
            p = self.pretraining
            train_steps(model, self.spec.objective, windows, steps=p.steps, lr=p.lr, batch_size=p.batch_size,
                        pack=self.spec.pack, seed=seed, sessions_per_batch=p.sessions_per_batch,
                        weight_decay=p.weight_decay)
            _PRETRAINED[key] = model
        return _PRETRAINED[key]

    # ------------------------------------------------------------------ adaptation
    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None) -> dict:
        from spikefm.eval.transfer import _recalibration_params, _windows, train_steps

        # torch's thread count is the process's (``spikefm bench --threads``, one by default): training on several
        # threads is not bit-reproducible between processes on this CPU build, one thread is
        dev = decoding_inputs(dev, self.metric)
        model = copy.deepcopy(self._pretrained(dev.session, seed))
        tokenizer = self.spec.make_tokenizer(self.config)
        starts = _train_trial_starts(dev, self.k)
        rows = _rows_at(dev, starts)
        torch.manual_seed(seed)  # new rows and dropout draw from torch's global generator
        if self.condition != "zero_shot":
            windows = _windows(dev, rows, tokenizer, self.task.window)
            if self.condition == "recalibrate":
                train_params, decay = _recalibration_params(model, dev), 0.0
            else:
                if hasattr(model, "add_session"):
                    model.add_session(dev)
                train_params, decay = None, self.pretraining.weight_decay
            if hasattr(model, "calibrate"):  # the k trials also give a calibrating model its identities
                model.calibrate(dev, rows)
            train_steps(model, self.spec.objective, windows, steps=int(params["steps"]), lr=float(params["lr"]),
                        batch_size=self.pretraining.batch_size, pack=self.spec.pack, params=train_params,
                        seed=seed, weight_decay=decay)
        return {"model": model, "tokenizer": tokenizer, "starts": starts}

    def _scores(self, fitted: dict, rec: Recording, split: str) -> TrialScores:
        from spikefm.eval.evaluate import predict

        model = fitted["model"]
        if hasattr(model, "forget"):
            model.forget(rec.session)  # identities from exactly the k trials, whatever was registered before
        calibration = _rows_at(rec, fitted["starts"]) if hasattr(model, "calibrate") else None
        out = predict(model, fitted["tokenizer"], rec, split=split, window=self.task.window, pack=self.spec.pack,
                      calibration=calibration)
        return predicted_decoder_scores(self.metric, out)


def transfer_task(window: float = 1.0, behavior_key: str = "hand_vel") -> Task:
    """Decode R2 of ``behavior_key`` on the target's trial windows."""
    return Task(DECODE_R2, window=window, bin_size=0.02, behavior_key=behavior_key)
