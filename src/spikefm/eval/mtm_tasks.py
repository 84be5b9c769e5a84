"""MtM's four evaluation tasks on one session's trials, scored in bits per spike.

Each task hides part of the (held-in) activity, prompts the model with the matching scheme and
scores the prediction of what was hidden; held-out units are hidden in every pass.

* ``forward_pred``: the last ``n_forward`` bins of every unit, causal prompt and attention.
* ``neuron_pred``: each held-in unit in turn, from all the other held-in units; held-out
  units from all held-in units (the NLB co-smoothing setting).
* ``intra_region``: each unit from the other held-in units of its own region only (the other
  regions hidden too).
* ``inter_region``: each region's units from all the other regions (needs two regions).

Every task reports NLB-pooled bits per spike over its predicted entries (key ``<task>``) and
MtM's per-neuron average (key ``<task> per-neuron``), which weights sparse neurons much more
and is not comparable with the pooled number (see :func:`~spikefm.eval.metrics.bits_per_spike_per_neuron`).

:func:`smoothing_task_scores` scores NLB's smoothing baseline (Gaussian-smoothed inputs ->
Poisson GLM fitted on train trials) on the three co-smoothing tasks with the same inputs and
targets; forward prediction has no smoothing counterpart.

>>> scores = mtm_task_scores(model, recording)  # doctest: +SKIP
>>> sorted(scores)[:2]  # doctest: +SKIP
['forward_pred', 'forward_pred per-neuron']
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from spikefm.data.recording import Recording
from spikefm.data.sampling import TrialWindowSampler
from spikefm.eval.baselines.masked import MASKED_TASKS, GLMTask
from spikefm.eval.metrics import bits_per_spike, bits_per_spike_per_neuron
from spikefm.objectives.masking import MaskingScheme
from spikefm.tokenize.base import Batch, collate

__all__ = ["TASKS", "mtm_task_scores", "task_predictions", "smoothing_task_scores"]

TASKS = ("forward_pred", "neuron_pred", "intra_region", "inter_region")


@torch.no_grad()
def task_predictions(
    model: torch.nn.Module,
    recording: Recording,
    *,
    tokenizer: Callable | None = None,
    split: str | None = "test",
    window: float = 1.0,
    n_forward: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Predicted rates and observed counts of each task's hidden entries.

    Args:
        model: a trained :class:`~spikefm.models.mtm.MtM`.
        recording: one session the model has a stitcher for.
        tokenizer: its binned tokenizer (default: the MtM tokenizer for the model's config).
        split: trials to score.
        window: seconds per trial-aligned window.
        n_forward: bins of forward prediction (default: 200 ms, NLB's fp-bps window).

    Returns:
        task -> (rates [K, T', N'], counts [K, T', N']) as float arrays (tasks that cannot run on
        this session, e.g. inter-region with one region, are left out).
    """
    from spikefm.models.mtm import MtM, _tokenizer

    if not isinstance(model, MtM):
        raise TypeError(f"MtM task evaluation needs an MtM model, got {type(model).__name__}")
    tokenizer = tokenizer or _tokenizer(model.config)
    batch = _trial_batch(recording, tokenizer, split, window).to(next(model.parameters()).device)
    n_forward = n_forward or max(1, int(round(0.2 / model.config.bin_size)))
    was_training = model.training
    model.eval()
    try:
        runner = _TaskRunner(model, batch, recording)
        out = {"forward_pred": runner.forward_prediction(n_forward), "neuron_pred": runner.neuron_prediction()}
        regions = runner.regions()
        out["intra_region"] = runner.intra_region(regions)
        if len(regions) >= 2:
            out["inter_region"] = runner.inter_region(regions)
    finally:
        model.train(was_training)
    return out


def mtm_task_scores(model: torch.nn.Module, recording: Recording, **kwargs) -> dict[str, float]:
    """Pooled and per-neuron bits per spike of the four MtM tasks (see :func:`task_predictions`)."""
    scores: dict[str, float] = {}
    for task, (rates, counts) in task_predictions(model, recording, **kwargs).items():
        scores[task] = bits_per_spike(rates, counts)
        scores[f"{task} per-neuron"] = float(bits_per_spike_per_neuron(rates, counts))
    return scores


def smoothing_task_scores(
    recording: Recording, *, split: str = "test", window: float = 1.0, bin_size: float = 0.02
) -> dict[str, float]:
    """Pooled bits per spike of NLB's smoothing baseline on neuron_pred, intra_region and inter_region.

    Each target set gets its own :class:`~spikefm.eval.baselines.SmoothingBaseline` (50 ms
    Gaussian, Poisson GLM, NLB defaults) fitted on the train trials from exactly the held-in units
    the MtM task shows the model: every other held-in unit (``neuron_pred``), the other held-in
    units of the same region (``intra_region``), the held-in units of the other regions
    (``inter_region``); held-out units are predicted from the task's whole context. Targets are
    the entries :func:`task_predictions` scores, on ``split``'s trial-start windows. The tuned form (kernel and
    penalty chosen on validation) is :class:`~spikefm.eval.baselines.masked.MaskedSmoothing`.

    Returns:
        task -> pooled bits per spike (region tasks only with >= 1 / >= 2 labelled regions).
    """
    from spikefm.eval.trials import trial_arrays

    train, test = (trial_arrays(recording, split=s, bin_size=bin_size, window=window, behavior_key=None)
                   for s in ("train", split))  # fmt: skip
    labels = np.full(recording.n_units, "") if test.regions is None else test.regions
    regions = sorted(set(labels.tolist()) - {""})
    fit = GLMTask(train.counts, train.heldout, bin_size)
    scores = {}
    for task in MASKED_TASKS:
        if task != "neuron_pred" and len(regions) < (1 if task == "intra_region" else 2):
            continue
        rates, units = fit.task_rates(task, test.counts, labels)
        scores[task] = fit.score(rates, test.counts, units)
    return scores


def _trial_batch(recording: Recording, tokenizer: Callable, split: str | None, window: float) -> Batch:
    sampler = TrialWindowSampler([recording], after=window, split=split)
    return collate([tokenizer(recording.window(spec.t0, spec.t1)) for spec in sampler.epoch_windows(0)])


class _TaskRunner:
    """Runs masked passes of one model over one batch of trials and gathers the hidden entries."""

    def __init__(self, model, batch: Batch, recording: Recording) -> None:
        self.model, self.batch = model, batch
        self.counts = batch.values.float()  # [K, T, N]
        self.heldout = torch.as_tensor(recording.units.heldout, device=self.counts.device)  # [N]
        labels = recording.units.region if recording.units.region is not None else np.full(recording.n_units, "")
        self.labels = np.asarray(labels).astype(str)

    def regions(self) -> list[str]:
        return sorted(set(self.labels.tolist()) - {""})

    def _rates(self, hide_units: torch.Tensor, scheme: MaskingScheme, region: str | None = None,
               hide_bins: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        """exp(log-rates) [K, T, N] with units ``hide_units`` [N] (or bins x units) hidden."""
        k, t, n = self.counts.shape
        hide = hide_units[None, None, :].expand(k, t, n)
        if hide_bins is not None:
            hide = hide | hide_bins[None, :, None].expand(k, t, n)
        targets = None if region is None else [region] * k
        return self.model.predict_masked(self.batch, hide, scheme, targets).exp()

    def _pack(self, rates: torch.Tensor, units: torch.Tensor, bins: slice = slice(None)) -> tuple[np.ndarray, ...]:
        return rates[:, bins][..., units].cpu().numpy(), self.counts[:, bins][..., units].cpu().numpy()

    def forward_prediction(self, n_forward: int) -> tuple[np.ndarray, np.ndarray]:
        t = self.counts.shape[1]
        bins = torch.arange(t, device=self.counts.device) >= t - n_forward
        rates = self._rates(torch.zeros_like(self.heldout), MaskingScheme.CAUSAL, hide_bins=bins)
        return self._pack(rates, torch.ones_like(self.heldout), slice(t - n_forward, None))

    def _one_by_one(self, units: np.ndarray, context: torch.Tensor, scheme: MaskingScheme,
                    region: str | None) -> torch.Tensor:  # fmt: skip
        """Rates [K, T, N] where each unit in ``units`` is predicted with only itself (+ ~context) hidden."""
        out = torch.zeros_like(self.counts)
        outside = ~context
        for unit in units:
            hide = outside.clone()
            hide[unit] = True
            out[..., unit] = self._rates(hide, scheme, region)[..., unit]
        held = self.heldout & context
        if bool(held.any()):
            out[..., held] = self._rates(outside, scheme, region)[..., held]
        return out

    def neuron_prediction(self) -> tuple[np.ndarray, np.ndarray]:
        everyone = torch.ones_like(self.heldout)
        heldin = np.flatnonzero(~self.heldout.cpu().numpy())
        rates = self._one_by_one(heldin, everyone, MaskingScheme.NEURON, None)
        return self._pack(rates, everyone)

    def intra_region(self, regions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rates = torch.zeros_like(self.counts)
        for region in regions:
            members = torch.as_tensor(self.labels == region, device=self.counts.device)
            heldin = np.flatnonzero((members & ~self.heldout).cpu().numpy())
            part = self._one_by_one(heldin, members, MaskingScheme.INTRA_REGION, region)
            rates[..., members] = part[..., members]
        return self._pack(rates, torch.as_tensor(self.labels != "", device=self.counts.device))

    def inter_region(self, regions: list[str]) -> tuple[np.ndarray, np.ndarray]:
        rates = torch.zeros_like(self.counts)
        for region in regions:
            members = torch.as_tensor(self.labels == region, device=self.counts.device)
            rates[..., members] = self._rates(members, MaskingScheme.INTER_REGION, region)[..., members]
        return self._pack(rates, torch.as_tensor(self.labels != "", device=self.counts.device))
