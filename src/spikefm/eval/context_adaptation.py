"""Adapt a pretrained model to a new session by learning only that session's identity rows.

NDT2 learns a new session's context tokens with everything else frozen; POYO learns the new
session's unit and session embeddings. Both expose the same two methods, and this loop drives
either (and any model that follows the protocol):

* ``model.add_session(recording)`` adds the rows the new session needs;
* ``model.freeze_for_recalibration(recording) -> list[Parameter]`` freezes every parameter
  except those rows (the tables' other rows get zero gradient) and returns what to optimise.

The objective is the model's own training objective on the session's training trials (masked
modelling for NDT2, behaviour MSE for POYO). Adam without weight decay leaves every other row
and parameter exactly as it was.

>>> from spikefm.eval.context_adaptation import adapt_context  # doctest: +SKIP
>>> result = adapt_context(model, new_recording, tokenizer, objective, steps=200, lr=1e-2)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader

from spikefm.data.dataset import WindowDataset
from spikefm.data.recording import Recording
from spikefm.data.sampling import TrialWindowSampler
from spikefm.nn.identity import KeyedEmbedding
from spikefm.tokenize.base import collate

__all__ = ["AdaptationResult", "adapt_context"]


@dataclass
class AdaptationResult:
    """What :func:`adapt_context` did.

    Attributes:
        losses: training loss of every step.
        n_trainable: number of scalars that could change (the new rows' width x count).
        added: what ``add_session`` reported adding.
    """

    losses: list[float]
    n_trainable: int
    added: object


def adapt_context(
    model: nn.Module,
    recording: Recording,
    tokenizer: Callable,
    objective: Callable,
    *,
    steps: int = 200,
    lr: float = 1e-2,
    batch_size: int = 16,
    window: float = 1.0,
    split: str | None = "train",
    pack: bool = False,
    seed: int = 0,
) -> AdaptationResult:
    """Learn ``recording``'s context / identity rows of ``model``; everything else stays fixed.

    Args:
        model: a model with ``add_session(recording)`` and ``freeze_for_recalibration(recording)``.
        recording: the new session.
        tokenizer: the model's tokenizer (``spec.make_tokenizer(config)``).
        objective: the model's ``(outputs, batch) -> (loss, metrics)``.
        steps: optimizer steps.
        lr: Adam learning rate.
        batch_size: windows per step.
        window: seconds per trial-aligned window.
        split: trials to learn from (None: all trials).
        pack: collate packed (the model's ``ModelSpec.pack``).
        seed: window order.

    Returns:
        :class:`AdaptationResult`. The model is left in eval mode with its parameters' trainable
        flags as they were before (the new rows keep their learned values).
    """
    for method in ("add_session", "freeze_for_recalibration"):
        if not callable(getattr(model, method, None)):
            raise TypeError(f"{type(model).__name__} has no {method}(recording); it cannot be adapted by context alone")
    if steps < 1 or not lr > 0:
        raise ValueError(f"adapt_context needs steps >= 1 and lr > 0, got steps={steps}, lr={lr}")
    added = model.add_session(recording)
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    params = model.freeze_for_recalibration(recording)
    n_trainable = _n_trainable(model, params)
    sampler = TrialWindowSampler([recording], after=window, split=split, shuffle=True, seed=seed)
    loader = DataLoader(WindowDataset([recording], tokenizer), sampler=sampler, batch_size=batch_size,
                        collate_fn=partial(collate, pack=pack))  # fmt: skip
    device = next(model.parameters()).device
    optimizer = torch.optim.Adam(params, lr=lr, weight_decay=0.0)
    losses: list[float] = []
    model.train()
    try:
        epoch = 0
        while len(losses) < steps:
            sampler.set_epoch(epoch)
            for batch in loader:
                batch = batch.to(device)
                optimizer.zero_grad()
                loss, _ = objective(model(batch), batch)
                loss.backward()
                optimizer.step()
                losses.append(float(loss.detach()))
                if len(losses) >= steps:
                    break
            epoch += 1
    finally:
        _restore(model, flags)
        model.eval()
    return AdaptationResult(losses=losses, n_trainable=n_trainable, added=added)


def _restore(model: nn.Module, flags: dict[str, bool]) -> None:
    for module in model.modules():
        if isinstance(module, KeyedEmbedding):
            module.unfreeze()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(flags.get(name, True))


def _n_trainable(model: nn.Module, params: list[nn.Parameter]) -> int:
    """Scalars that can change: the unfrozen rows of keyed tables, whole tensors otherwise."""
    total = 0
    for parameter in params:
        table = next((m for m in model.modules() if isinstance(m, KeyedEmbedding) and m.weight is parameter), None)
        keys = table.trainable_keys if table is not None else None
        total += parameter.numel() if keys is None else len(keys) * table.dim
    return total
