"""NEDS's two tasks from one trained model: encoding (behaviour -> spikes) and decoding (spikes -> behaviour).

On every trial window of a split the model runs twice:

* ``mode="decoding"`` (all behaviour tokens hidden): ``decode R2`` (variance-weighted, at the
  recorded behaviour samples, as every spikefm decoder) and co-bps of the NLB held-out units (never an input, in any mode);
* ``mode="encoding"`` (all spike tokens hidden, behaviour given): bits per spike of every unit,
  NLB-pooled (``enc bps``) and, as NEDS / MtM report it, averaged neuron by neuron
  (``enc bps per-neuron``; not comparable with the pooled number).

Beside them: a behaviour -> spikes Poisson GLM (the same information NEDS's encoding gets: the
behaviour at offsets of up to ``half_width`` bins either side) and, on synthetic data, the
oracle (true rates). ``python -m spikefm.eval.neds_tasks CHECKPOINT`` prints the table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from spikefm.data.dataset import WindowDataset
from spikefm.data.recording import Recording
from spikefm.data.sampling import TrialWindowSampler
from spikefm.eval.baselines import PoissonGLM, lagged_features
from spikefm.eval.metrics import CO_BPS, bits_per_spike, bits_per_spike_per_neuron, co_bps, decoder_metric
from spikefm.eval.samples import BehaviorSamples, decoded_r2, recorded_samples
from spikefm.eval.trials import TrialArrays, trial_arrays
from spikefm.tokenize.base import collate

__all__ = ["NEDSPredictions", "predict_neds", "score_neds", "behavior_glm_bps", "neds_rows", "main"]


@dataclass
class NEDSPredictions:
    """A NEDS model's outputs in both modes over the trial windows of one split of one recording.

    Attributes:
        decoding_rates: float [K, T, N] expected counts per bin with behaviour hidden.
        encoding_rates: float [K, T, N] expected counts per bin with spikes hidden.
        counts: int [K, T, N] observed counts.
        behavior: float [K, T, D] decoded behaviour (decoding mode).
        behavior_true: float [K, T, D] true behaviour at the bin centres.
        query_mask: bool [K, T] valid bins.
        heldout: bool [N] NLB held-out units.
        query_times: float [K, T] query times from each window's start, or None.
        behavior_key: the decoded series, or None.
        samples: its recorded samples in each window (``decode R2`` is scored there), or None.
    """

    decoding_rates: np.ndarray
    encoding_rates: np.ndarray
    counts: np.ndarray
    behavior: np.ndarray
    behavior_true: np.ndarray
    query_mask: np.ndarray
    heldout: np.ndarray
    query_times: np.ndarray | None = None
    behavior_key: str | None = None
    samples: BehaviorSamples | None = None


@torch.no_grad()
def predict_neds(
    model: torch.nn.Module, tokenizer: Callable, recording: Recording, *, split: str | None = "test",
    window: float = 1.0, batch_size: int = 32,
) -> NEDSPredictions:
    """Run ``model`` (in eval mode) in decoding and encoding mode on ``split``'s trial windows."""
    sampler = TrialWindowSampler([recording], after=window, split=split)
    loader = DataLoader(WindowDataset([recording], tokenizer), sampler=sampler, batch_size=batch_size,
                        collate_fn=partial(collate, pack=False))  # fmt: skip
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[np.ndarray]] = {}
    try:
        for batch in loader:
            batch = batch.to(device)
            decoding, encoding = model(batch, mode="decoding"), model(batch, mode="encoding")
            (key,) = batch.targets
            for name, value in (
                ("decoding_rates", decoding["log_rates"].exp()), ("encoding_rates", encoding["log_rates"].exp()),
                ("counts", batch.values), ("behavior", decoding["behavior"]), ("behavior_true", batch.targets[key]),
                ("query_mask", batch.query_mask), ("query_times", batch.query_timestamps.double()),
            ):  # fmt: skip
                parts.setdefault(name, []).append(value.float().cpu().numpy() if value.is_floating_point()
                                                  else value.cpu().numpy())
    finally:
        model.train(was_training)
    joined = {k: np.concatenate(v) for k, v in parts.items()}
    samples = None
    if key in recording.behavior:
        samples = recorded_samples(recording, np.array([w.t0 for w in sampler.epoch_windows(0)]), window, key)
    return NEDSPredictions(**joined, heldout=recording.units.heldout.copy(), behavior_key=key, samples=samples)


def score_neds(predictions: NEDSPredictions) -> dict[str, float]:
    """``decode R2`` (or ``position R2``) and ``co-bps`` (decoding mode); ``enc bps`` and ``enc bps per-neuron``
    (encoding mode)."""
    p = predictions
    scores = {decoder_metric(p.behavior_key): decoded_r2(p.behavior, p.query_times, p.query_mask, p.behavior_true,
                                                         p.samples)}
    if p.heldout.any():
        scores[CO_BPS] = co_bps(p.decoding_rates[..., p.heldout], p.counts[..., p.heldout])
    scores["enc bps"] = bits_per_spike(p.encoding_rates, p.counts)
    scores["enc bps per-neuron"] = float(bits_per_spike_per_neuron(p.encoding_rates, p.counts))
    return scores


def _behavior_features(behavior: np.ndarray, half_width: int) -> np.ndarray:
    """Behaviour at offsets ``-half_width .. +half_width`` bins (zeros beyond a trial): [K * T, D * (2h + 1)]."""
    past = lagged_features(behavior, half_width + 1)  # t, t-1, ..., t-h
    future = lagged_features(behavior[:, ::-1], half_width + 1)  # t, t+1, ..., t+h (reversed time)
    k, t, d = behavior.shape
    future = future.reshape(k, t, -1)[:, ::-1].reshape(k * t, -1)[:, d:]  # drop the duplicated lag 0
    return np.concatenate([past, future], axis=1)


def behavior_glm_bps(train: TrialArrays, test: TrialArrays, *, half_width: int = 4, alpha: float = 1e-3) -> float:
    """Encoding baseline: a Poisson GLM per unit from the behaviour around each bin; pooled bits/spike on ``test``."""
    if train.behavior is None or test.behavior is None:
        raise ValueError("behavior_glm_bps needs behaviour in both splits")
    glm = PoissonGLM(alpha=alpha).fit(
        _behavior_features(train.behavior, half_width), train.counts.reshape(-1, train.counts.shape[-1])
    )
    rates = glm.predict(_behavior_features(test.behavior, half_width)).reshape(test.counts.shape)
    return bits_per_spike(rates, test.counts)


def neds_rows(
    model: torch.nn.Module, tokenizer: Callable, recordings: Sequence[Recording], *, dataset: Any = None,
    split: str = "test", window: float = 1.0, bin_size: float = 0.02, behavior_key: str = "hand_vel",
) -> dict[tuple[str, str], dict[str, float]]:
    """``{(session, row): {metric: value}}`` for NEDS, the behaviour GLM and (synthetic data) the oracle."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for rec in recordings:
        rows[(rec.session, "neds")] = score_neds(predict_neds(model, tokenizer, rec, split=split, window=window))
        train, test = (trial_arrays(rec, split=s, bin_size=bin_size, window=window, behavior_key=behavior_key)
                       for s in ("train", split))  # fmt: skip
        rows[(rec.session, "behaviour GLM")] = {"enc bps": behavior_glm_bps(train, test)}
        if dataset is not None and rec.session in [r.session for r in dataset.recordings]:
            true = np.stack([dataset.true_rate_counts(rec.session, bin_size, t0, t0 + window) for t0 in test.starts])
            rows[(rec.session, "oracle")] = {"enc bps": bits_per_spike(true, test.counts)}
    return rows


def _markdown(rows: dict[tuple[str, str], dict[str, float]]) -> str:
    metrics = sorted({m for row in rows.values() for m in row})
    lines = ["| session | model | " + " | ".join(metrics) + " |", "|---|---|" + "---|" * len(metrics)]
    for (session, name), row in rows.items():
        lines.append(f"| {session} | {name} | " + " | ".join(f"{row[m]:.3f}" if m in row else "-" for m in metrics)
                     + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> str:
    """``python -m spikefm.eval.neds_tasks CHECKPOINT [--split test]``: print the encoding / decoding table."""
    from spikefm.models.registry import build_config, get_spec
    from spikefm.train.data import load_recordings
    from spikefm.train.fit import load_checkpoint

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    module, config = load_checkpoint(args.checkpoint)
    if config.model.name != "neds":
        raise SystemExit(f"{args.checkpoint} holds a '{config.model.name}' model, not NEDS")
    model_config = build_config("neds", config.model.preset, **config.model.overrides)
    tokenizer = get_spec("neds").make_tokenizer(model_config, **config.tokenizer)
    recordings, dataset = load_recordings(config.data, seed=config.trainer.seed)
    rows = neds_rows(module.model, tokenizer, recordings, dataset=dataset, split=args.split, window=config.data.window,
                     bin_size=model_config.bin_size, behavior_key=model_config.behavior_key)
    table = _markdown(rows)
    print(table)
    return table


if __name__ == "__main__":
    main()
