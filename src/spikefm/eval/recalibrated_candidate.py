"""A model's second mode within a session: its units' identities recalibrated by gradient on the train trials.

The unified model is label-free by default: a unit's identity comes from an IDEncoder over unlabeled calibration
windows. Its second mode (as POYO recalibrates) adds one learned offset per unit on top of that identity
(``add_session`` + ``freeze_for_recalibration``) and trains only those offsets, every shared weight frozen. Across
sessions the transfer protocol scores that mode on k labelled trials of a new session. Within a session the train
trials are labelled anyway, and POSSM and POYO learn one row per unit from them; :class:`RecalibratedCandidate`
gives the unified model the same information.

The model trains exactly as the recipe's row (:class:`~spikefm.eval.model_candidate.ModelCandidate`, the same
search on the development draw's validation trials). Then its offsets train on the session's train-split trial
windows with the model's own objective. The recalibration settings are fixed, not searched: lr 0.1, 400 steps, no
weight decay (the new rows should not shrink), chosen on the Lorenz development draw's validation trials (lorenz-0,
2 seeds of the recipe trained 600 steps; val decode R2 0.858 without recalibration, 0.868 at the transfer protocol's
lr 1e-2 / 200 steps, 0.867 at 3e-2 / 200, 0.871 at 3e-2 / 600, 0.877 at 3e-3 / 600, 0.878 at 0.1 / 400; also the
best of six for co-bps, 0.144 -> 0.170, one seed; ``benchmarks/unified_recalibration_settings.py``). Scoring is the
base row's: the learned offsets are added to the identities the base row would use.

Measured on fresh Lorenz draws (forty-fourth and forty-fifth sittings, ``docs/results/protocol.md``): decoding +0.021
over the label-free recipe and level with POSSM; co-bps level with the recipe and with MtM. On real recordings
(forty-sixth and forty-seventh): M1 decoding with population frames level with POSSM (``unified:decode:population:
recalibrated``); MC_Maze_Small co-bps +0.025 over the recipe (level), 0.046 below MtM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from spikefm.data.recording import Recording
from spikefm.eval.candidates import Reporter, decoding_inputs
from spikefm.eval.evaluate import calibration_trials, train_trial_rows
from spikefm.eval.model_candidate import ModelCandidate
from spikefm.eval.protocol import ablation_name, ablation_of
from spikefm.eval.unit_rate_candidate import UnitRateCandidate

__all__ = ["RecalibratedCandidate", "RecalibratedUnitRateCandidate", "recalibrate_identities", "train_trial_rows"]


def recalibrate_identities(fitted: dict, dev: Recording, *, model_name: str, window: float, lr: float, steps: int,
                           batch_size: int, seed: int, registered: bool) -> dict:
    """Train ``fitted["model"]``'s identity offsets for ``dev``'s units on its train trial windows (in place), every
    other weight frozen; ``registered``: identities from the fixed calibration set (as decoding scores), else pooled
    in each batch (as co-smoothing scores)."""
    from spikefm.eval.transfer import _recalibration_params, _windows, train_steps
    from spikefm.models.registry import get_spec

    model = fitted["model"]
    windows = _windows(dev, train_trial_rows(dev), fitted["tokenizer"], window)
    torch.manual_seed(seed)  # the offsets' dropout and masking draws
    offsets = _recalibration_params(model, dev)  # zero offsets for the session's units, the rest frozen
    if registered:
        model.calibrate(dev, calibration_trials(dev, int(getattr(model.config, "calibration_trials", 8))))
    train_steps(model, get_spec(model_name).objective, windows, steps=steps, lr=lr, batch_size=batch_size,
                pack=fitted["pack"], params=offsets, seed=seed, weight_decay=0.0)
    if registered:  # scoring registers it again, its triggered states now read with the learned offsets
        model.forget(dev.session)
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return fitted


def _check_recalibrates(model: str, preset: str, overrides: dict[str, Any]) -> None:
    from spikefm.models.registry import build_config, get_spec

    model_cls = get_spec(model).model_cls
    if not (hasattr(model_cls, "add_session") and hasattr(model_cls, "freeze_for_recalibration")):
        raise ValueError(f"{model} has no recalibration mode (add_session + freeze_for_recalibration)")
    if getattr(build_config(model, preset, **overrides), "identity", None) == "table":
        raise ValueError(f"{model} with identity: table already learns a row per unit in training")


@dataclass
class _SecondMode:
    """Trains as the base row, then recalibrates every unit's identity offset on the train trials (a mixin placed
    before a :class:`ModelCandidate` subclass). The row keeps its base name with ``mode=recalibrated`` added, so the
    protocol pairs it with that row, and :func:`spikefm.eval.bench.unified_versus_parents` with the parents too.

    Args:
        recalibrate_lr: peak learning rate of the offsets (warm-up, cosine decay).
        recalibrate_steps: optimizer steps on random batches of the train trial windows.
    """

    recalibrate_lr: float = 0.1
    recalibrate_steps: int = 400

    paired_with_parents: ClassVar[bool] = True
    registered_identities: ClassVar[bool] = True  # as the base row scores: registered calibration, or in-batch pools

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        _check_recalibrates(self.model, self.preset, self.overrides)  # type: ignore[attr-defined]
        base = ablation_of(self.name) or self.name  # type: ignore[has-type]
        self.name = ablation_name(base, {**self.overrides, "mode": "recalibrated"})  # type: ignore[attr-defined]

    def key(self) -> dict[str, Any]:
        return {**super().key(), "recalibrate": {"lr": self.recalibrate_lr,  # type: ignore[misc]
                                                 "steps": self.recalibrate_steps, "format": 1}}

    def fit(self, dev: Recording, params: dict[str, Any], seed: int, report: Reporter | None = None) -> dict:
        return self.recalibrate(super().fit(dev, params, seed, report), dev, seed)  # type: ignore[misc]

    def recalibrate(self, fitted: dict, dev: Recording, seed: int) -> dict:
        """Train ``fitted["model"]``'s identity offsets for ``dev``'s units on its train trials (in place)."""
        model = fitted["model"]
        registered = self.registered_identities and getattr(model, "calibrates", hasattr(model, "calibrate"))
        return recalibrate_identities(fitted, decoding_inputs(dev, self.metric),  # type: ignore[attr-defined]
                                      model_name=self.model, window=self.task.window,  # type: ignore[attr-defined]
                                      lr=self.recalibrate_lr, steps=self.recalibrate_steps,
                                      batch_size=self.batch_size, seed=seed,  # type: ignore[attr-defined]
                                      registered=registered)


@dataclass
class RecalibratedCandidate(_SecondMode, ModelCandidate):
    """A decoding row (:class:`ModelCandidate`) in the second mode, named ``"<model> [mode=recalibrated]"``; its
    identities during recalibration come from the fixed calibration set, as decoding scores them."""


@dataclass
class RecalibratedUnitRateCandidate(_SecondMode, UnitRateCandidate):
    """Co-smoothing (:class:`~spikefm.eval.unit_rate_candidate.UnitRateCandidate`) in the second mode, named
    ``"<model> co-bps [mode=recalibrated]"``.

    Every unit's offset trains on the train trials with the model's objective, so a held-out unit's offset learns
    from its counts on the train trials (which NLB gives every model, and MtM's per-unit readout learns from). Its
    identities during recalibration are pooled in each batch, as co-smoothing scores them."""

    registered_identities: ClassVar[bool] = False
