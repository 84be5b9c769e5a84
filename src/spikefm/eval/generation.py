"""Neuroformer generation: sample spike trains autoregressively, decode behaviour, and score both.

Generation runs trial by trial in chunks of ``current_window`` seconds, as Neuroformer's
``generate_spikes`` does: each chunk starts from SOS, and the model samples the next neuron id and
dt token until it emits EOS (or fills its block). The past chunk it conditions on holds the true
spikes before the trial starts, then its *own* generated spikes (``true_past=False``, free-running)
or the true ones (``true_past=True``, teacher-forced past). Behaviour, when the model conditions on
it, is the true behaviour of the trial (the paper conditions on the true video the same way).

Scores (:func:`generation_scores`):

* per-neuron firing rates of the generated trials vs the same trials' recorded spikes (Hz): mean
  absolute error, relative error and correlation over neurons;
* bits/spike (NLB pooled definition) of the model's own expected rates: along each sampled
  trajectory, every step adds P(id = u) P(dt = d) to unit u's expected count at token d (a
  Rao-Blackwellised estimate, far less noisy than counting the drawn spikes), averaged over
  ``n_samples`` trajectories, plus a small floor; ``bits/spike sampled`` scores the drawn spikes
  themselves (mean over samples, Gaussian-smoothed). Beside them the oracle (true rates, synthetic
  data), a condition-PSTH (train-trial average per condition, smoothed; it sees neither past spikes
  nor behaviour) and the baseline with Neuroformer's conditioning, ``bits/spike history GLM``: a
  Poisson GLM on the true spikes of the bins before each bin and the behaviour, its history length
  and penalty chosen on the val trials (:class:`~spikefm.eval.baselines.HistoryGLM`). It reads the
  true spikes up to the previous bin, at least what Neuroformer reads with ``true_past=True`` (true
  spikes up to its chunk's start, its own samples after), so a model beating it is not flattered;
* ``decode R2`` of Neuroformer's behaviour head over whole trials (sliding past + current windows,
  each decoding its current chunk), beside a ridge decoder fitted on the train trials.

Shape legend: K trials, S samples per trial, T bins, N units, Q behaviour samples, D behaviour dims.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from spikefm.data.recording import Recording
from spikefm.eval.baselines import HistoryGLM, RidgeDecoder, decoder_score, smooth_spikes, tune_on_val
from spikefm.eval.metrics import DECODE_R2, bits_per_spike, decoding_r2
from spikefm.eval.trials import trial_arrays
from spikefm.models.neuroformer import EventInputs, Neuroformer
from spikefm.tokenize.base import collate

__all__ = ["GeneratedSpikes", "generate_spikes", "decode_behavior", "decode_behavior_by_trial", "generation_scores",
           "split_trials"]

RATE_FLOOR = 1e-3  # expected counts per bin added to sampled rates (0.05 Hz at 20 ms) so log(rate) is finite
KERNEL_SD = 0.03  # s; smoothing of the Monte Carlo rate estimate
HISTORY_GLM_BUDGET = 4  # candidates of the history GLM's validation search


@dataclass
class GeneratedSpikes:
    """Sampled spike trains of K trials x S samples (times relative to each trial's start).

    Attributes:
        trials, starts: trial rows and their absolute starts [K].
        duration: seconds generated per trial.
        times, units: [K][S] spike times (s, trial-relative) and unit indices of each sample.
        n_units: N.
        expected: float [K, S, C, O, N] the model's expected spike count of each unit at each dt
            token O of each chunk C, summed over the sampling steps (Rao-Blackwellised: at every
            step the sampled prefix's id and dt probabilities are added, not just the drawn token).
        chunk: seconds per chunk; resolution: seconds per dt token.
    """

    trials: np.ndarray
    starts: np.ndarray
    duration: float
    times: list[list[np.ndarray]]
    units: list[list[np.ndarray]]
    n_units: int
    expected: np.ndarray
    chunk: float
    resolution: float

    def expected_rates(self, bin_size: float) -> np.ndarray:
        """The model's expected counts per bin, float [K, S, T, N], each dt token's mass spread
        uniformly over the times that round to it."""
        k, s, c, o, n = self.expected.shape
        n_bins = int(np.ceil(self.duration / bin_size - 1e-9))
        lo, hi = _token_intervals(o, self.resolution, self.chunk)  # [O]
        starts = (np.arange(c)[:, None] * self.chunk + lo[None, :]).ravel()  # [C * O]
        ends = (np.arange(c)[:, None] * self.chunk + hi[None, :]).ravel()
        edges = np.arange(n_bins + 1) * bin_size
        overlap = np.clip(np.minimum(ends[:, None], edges[None, 1:]) - np.maximum(starts[:, None], edges[None, :-1]),
                          0, None)  # [C * O, T]
        spread = overlap / np.maximum(ends - starts, 1e-12)[:, None]
        return np.einsum("ksxn,xt->kstn", self.expected.reshape(k, s, c * o, n), spread)

    def counts(self, bin_size: float) -> np.ndarray:
        """Binned samples, int64 [K, S, T, N] with T = ceil(duration / bin_size)."""
        n_bins = int(np.ceil(self.duration / bin_size - 1e-9))
        out = np.zeros((len(self.trials), len(self.times[0]), n_bins, self.n_units), np.int64)
        for k, (trial_times, trial_units) in enumerate(zip(self.times, self.units)):
            for s, (t, u) in enumerate(zip(trial_times, trial_units)):
                keep = (t >= 0) & (t < self.duration)
                index = np.minimum((t[keep] / bin_size).astype(np.int64), n_bins - 1)
                np.add.at(out[k, s], (index, u[keep]), 1)
        return out


def _token_intervals(n_offsets: int, resolution: float, chunk: float) -> tuple[np.ndarray, np.ndarray]:
    """Chunk-relative [lo, hi) of the times each dt token stands for (rounding, clipped to the chunk)."""
    d = np.arange(n_offsets)
    return np.maximum(0.0, (d - 0.5) * resolution), np.minimum(chunk, (d + 0.5) * resolution)


def split_trials(recording: Recording, split: str | None) -> np.ndarray:
    """Trial rows of ``split`` (all trials when None)."""
    if recording.trials is None or len(recording.trials) == 0:
        raise ValueError(f"{recording.session}: no trials table")
    rows = np.arange(len(recording.trials))
    if split is None:
        return rows
    return rows[recording.trials.columns["split"].astype(str) == split]


def _trial_duration(recording: Recording, trials: np.ndarray, duration: float | None) -> float:
    if duration is not None:
        return float(duration)
    return float(np.min(recording.trials.end[trials] - recording.trials.start[trials]))


# ---------------------------------------------------------------------------- sampling
class _Sampler:
    """Batched autoregressive sampling over G = K x S sequences for one model and recording."""

    def __init__(self, model: Neuroformer, recording: Recording, temperature: float, seed: int) -> None:
        if recording.n_units != model.n_units:
            raise ValueError(f"model has {model.n_units} units, recording {recording.session} has {recording.n_units}")
        self.model, self.recording, self.temperature = model, recording, temperature
        self.cfg, self.events = model.config, model.events
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.key = model.config.behavior_key

    def past_inputs(self, history: list[tuple[np.ndarray, np.ndarray]], past0: np.ndarray,
                    current0: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Past-chunk tokens of every sequence from its spike history [(times, units)]."""
        ids, dts = [], []
        for (times, units), lo, hi in zip(history, past0, current0):
            keep = (times >= lo) & (times < hi)
            t, u = times[keep], units[keep]
            order = np.argsort(t, kind="stable")[-self.cfg.prev_block_size:]
            ids.append(u[order])
            dts.append(np.clip(np.floor((t[order] - lo) / self.events.resolution + 0.5), 0, self.events.n_offsets - 1))
        return _pad([ids, dts], [self.model.specials["pad"], self.events.dt_pad], self.device)

    def behavior_inputs(self, past0: np.ndarray, end: np.ndarray) -> tuple[torch.Tensor, ...] | None:
        if not (self.cfg.condition_on_behavior and self.cfg.behavior_layers) or self.key not in self.recording.behavior:
            return None
        series = self.recording.behavior[self.key]
        lo = np.searchsorted(series.timestamps, past0, side="left")
        hi = np.searchsorted(series.timestamps, end, side="left")
        values = [series.values[a:b] for a, b in zip(lo, hi)]
        slots = [np.round((series.timestamps[a:b] - p) / self.cfg.resolution) for a, b, p in zip(lo, hi, past0)]
        width = max(1, max(v.shape[0] for v in values))
        out = np.zeros((len(values), width, series.dim), np.float32)
        pos = np.zeros((len(values), width), np.int64)
        mask = np.zeros((len(values), width), bool)
        for g, (v, s) in enumerate(zip(values, slots)):
            out[g, : len(v)], pos[g, : len(v)], mask[g, : len(v)] = v, s, True
        pos = np.clip(pos, 0, self.cfg.behavior_positions - 1)
        return tuple(torch.from_numpy(a).to(self.device) for a in (out, pos, mask))

    def sample_chunk(self, past: tuple[torch.Tensor, ...], behavior: tuple[torch.Tensor, ...] | None
                     ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
        """Sample one current chunk for every sequence: (unit ids, dt tokens) per sequence, and
        the expected counts [G, O, N] accumulated over the steps."""
        g = past[0].shape[0]
        n, n_off = self.model.n_units, self.events.n_offsets
        expected = torch.zeros(g, n_off, n)
        sos, eos, pad = (self.model.specials[k] for k in ("sos", "eos", "pad"))
        cur_ids = torch.full((g, 1), sos, dtype=torch.long, device=self.device)
        cur_dt = torch.full((g, 1), self.events.dt_sos, dtype=torch.long, device=self.device)
        cur_mask = torch.ones(g, 1, dtype=torch.bool, device=self.device)
        active = torch.ones(g, dtype=torch.bool, device=self.device)
        for _ in range(self.cfg.block_size - 1):
            inputs = EventInputs(*past, cur_ids, cur_dt, cur_mask, *(behavior or (None, None, None)))
            id_logits, dt_logits = self.model.next_token_logits(inputs)  # [G, V_id], [G, V_dt]
            id_logits[:, [sos, pad]] = -float("inf")
            dt_logits[:, self.events.n_offsets:] = -float("inf")
            last = cur_ids.shape[1] == self.cfg.block_size - 1
            p_id, p_dt = self._probs(id_logits), self._probs(dt_logits)  # [G, V_id], [G, V_dt]
            if not last:
                weight = active.cpu().float()[:, None, None]
                expected += weight * p_dt[:, :n_off, None] * p_id[:, None, :n]
            if last:  # the block is full: close the chunk
                new_id = torch.full((g,), eos, dtype=torch.long)
            else:
                new_id = torch.multinomial(p_id, 1, generator=self.generator)[:, 0]
            new_dt = torch.where(new_id == eos, self.events.dt_eos,
                                 torch.multinomial(p_dt, 1, generator=self.generator)[:, 0])
            new_id, new_dt = new_id.to(self.device), new_dt.to(self.device)
            cur_ids = torch.cat([cur_ids, torch.where(active, new_id, pad)[:, None]], 1)
            cur_dt = torch.cat([cur_dt, torch.where(active, new_dt, self.events.dt_pad)[:, None]], 1)
            cur_mask = torch.cat([cur_mask, active[:, None]], 1)
            active = active & (new_id != eos)
            if not bool(active.any()):
                break
        ids, dts = cur_ids.cpu().numpy(), cur_dt.cpu().numpy()
        spikes = (ids < n) & cur_mask.cpu().numpy()
        return [ids[i][spikes[i]] for i in range(g)], [dts[i][spikes[i]] for i in range(g)], expected.numpy()

    def _probs(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits.float().cpu() / self.temperature, dim=-1)


def _pad(columns: list[list[np.ndarray]], fills: list[int], device: torch.device) -> tuple[torch.Tensor, ...]:
    lengths = np.array([len(a) for a in columns[0]])
    width = max(1, int(lengths.max()) if lengths.size else 1)
    mask = np.arange(width)[None, :] < lengths[:, None]
    out = []
    for arrays, fill in zip(columns, fills):
        block = np.full((len(arrays), width), fill, np.int64)
        block[mask] = np.concatenate(arrays).astype(np.int64) if len(arrays) and mask.any() else []
        out.append(torch.from_numpy(block).to(device))
    return (*out, torch.from_numpy(mask).to(device))


@torch.no_grad()
def generate_spikes(
    model: Neuroformer,
    recording: Recording,
    trials: Sequence[int],
    *,
    duration: float | None = None,
    n_samples: int = 1,
    temperature: float = 1.0,
    true_past: bool = False,
    seed: int = 0,
) -> GeneratedSpikes:
    """Sample ``n_samples`` spike trains for each trial (rows of ``recording.trials``).

    Args:
        duration: seconds generated per trial from its start (default: the shortest trial).
        temperature: softmax temperature of both heads.
        true_past: condition each chunk on the recorded spikes before it instead of the generated ones.
    """
    trials = np.asarray(trials, dtype=np.int64)
    duration = _trial_duration(recording, trials, duration)
    was_training = model.training
    model.eval()
    sampler = _Sampler(model, recording, temperature, seed)
    starts = recording.trials.start[trials]
    seq_start = np.repeat(starts, n_samples)  # [G]
    cfg = model.config
    history = [_true_spikes(recording, s - cfg.past_window, s) for s in seq_start]
    generated: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in seq_start]
    n_chunks = int(np.ceil(duration / cfg.current_window - 1e-9))
    expected = np.zeros((len(seq_start), n_chunks, model.events.n_offsets, model.n_units))
    lo, hi = _token_intervals(model.events.n_offsets, cfg.resolution, cfg.current_window)
    jitter = np.random.default_rng(seed)
    for j in range(n_chunks):
        current0 = seq_start + j * cfg.current_window
        past0 = current0 - cfg.past_window
        if true_past:
            history = [_true_spikes(recording, p, c) for p, c in zip(past0, current0)]
        past = sampler.past_inputs(history, past0, current0)
        behavior = sampler.behavior_inputs(past0, current0 + cfg.current_window)
        ids, dts, expected[:, j] = sampler.sample_chunk(past, behavior)
        for g in range(len(seq_start)):
            # a dt token stands for the times that round to it: place the spike uniformly among them
            times = current0[g] + jitter.uniform(lo[dts[g]], hi[dts[g]])
            generated[g].append((times, ids[g]))
            if not true_past:
                history[g] = (np.concatenate([history[g][0], times]), np.concatenate([history[g][1], ids[g]]))
    model.train(was_training)
    times = [[np.concatenate([t for t, _ in generated[k * n_samples + s]]) - starts[k] for s in range(n_samples)]
             for k in range(len(trials))]
    units = [[np.concatenate([u for _, u in generated[k * n_samples + s]]).astype(np.int64) for s in range(n_samples)]
             for k in range(len(trials))]
    shape = (len(trials), n_samples, *expected.shape[1:])
    return GeneratedSpikes(trials, starts, duration, times, units, model.n_units, expected.reshape(shape),
                           cfg.current_window, cfg.resolution)


def _true_spikes(recording: Recording, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.searchsorted(recording.spikes.times, [t0, t1], side="left")
    return recording.spikes.times[lo:hi].copy(), recording.spikes.units[lo:hi].copy()


# ---------------------------------------------------------------------------- behaviour
@torch.no_grad()
def decode_behavior(
    model: Neuroformer, tokenizer: Any, recording: Recording, trials: Sequence[int], *, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Decoded and true behaviour over whole trials, each [sum of samples, D].

    Every current chunk of a trial is decoded from the window (past + current chunk) ending at its
    end; the behaviour samples inside the chunk are kept.
    """
    decoded, true, _ = decode_behavior_by_trial(model, tokenizer, recording, trials, duration=duration)
    return decoded, true


def decode_behavior_by_trial(
    model: Neuroformer, tokenizer: Any, recording: Recording, trials: Sequence[int], *, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`decode_behavior` with each sample's position in ``trials`` (int [sum of samples])."""
    trials = np.asarray(trials, dtype=np.int64)
    duration = _trial_duration(recording, trials, duration)
    cfg = model.config
    was_training = model.training
    model.eval()
    decoded, true, index = [], [], []
    n_chunks = int(np.ceil(duration / cfg.current_window - 1e-9))
    for i, start in enumerate(recording.trials.start[trials]):
        ends = start + (np.arange(n_chunks) + 1) * cfg.current_window
        samples = [tokenizer(recording.window(e - cfg.current_window - cfg.past_window, e)) for e in ends]
        batch = collate(samples)
        with torch.no_grad():
            out = model(batch.to(next(model.parameters()).device))
        slot = torch.round(batch.query_timestamps.double() / cfg.resolution)  # as the model places queries
        first = round(cfg.past_window / cfg.resolution)
        stop = round((cfg.past_window + cfg.current_window) / cfg.resolution)
        keep = batch.query_mask & (slot >= first) & (slot < stop)  # the current chunk, each sample once
        decoded.append(out["behavior"][keep].float().cpu().numpy())
        true.append(batch.targets[cfg.behavior_key][keep].numpy())
        index.append(np.full(int(keep.sum()), i, dtype=np.int64))
    model.train(was_training)
    return np.concatenate(decoded), np.concatenate(true), np.concatenate(index)


# ---------------------------------------------------------------------------- scores
def generation_scores(
    model: Neuroformer,
    tokenizer: Any,
    recording: Recording,
    *,
    split: str = "test",
    bin_size: float = 0.02,
    n_samples: int = 4,
    temperature: float = 1.0,
    true_past: bool = False,
    seed: int = 0,
    dataset: Any = None,
    duration: float | None = None,
) -> dict[str, float]:
    """Generation and decoding scores on the trials of ``split`` (see the module docstring)."""
    trials = split_trials(recording, split)
    duration = _trial_duration(recording, trials, duration)
    start = time.perf_counter()
    samples = generate_spikes(model, recording, trials, duration=duration, n_samples=n_samples,
                              temperature=temperature, true_past=true_past, seed=seed)
    seconds = time.perf_counter() - start
    generated = samples.counts(bin_size)  # [K, S, T, N]
    test = trial_arrays(recording, split=split, bin_size=bin_size, window=duration, behavior_key=None)
    scores = _rate_scores(generated, test.counts, duration)
    scores["bits/spike"] = bits_per_spike(samples.expected_rates(bin_size).mean(1) + RATE_FLOOR, test.counts)
    sampled = smooth_spikes(generated.mean(1).astype(np.float64), bin_size, KERNEL_SD) + RATE_FLOOR  # [K, T, N]
    scores["bits/spike sampled"] = bits_per_spike(sampled, test.counts)
    key = model.config.behavior_key if getattr(model.config, "condition_on_behavior", True) else None
    scores.update(_reference_bits(recording, split, bin_size, duration, test.counts, dataset, key))
    scores.update(_behavior_scores(model, tokenizer, recording, trials, split, duration))
    scores.update({"generation seconds": seconds, "trials": float(len(trials)), "samples": float(n_samples)})
    return scores


def _rate_scores(generated: np.ndarray, true_counts: np.ndarray, duration: float) -> dict[str, float]:
    gen_hz = generated.sum(axis=(0, 1, 2)) / (generated.shape[0] * generated.shape[1] * duration)  # [N]
    true_hz = true_counts.sum(axis=(0, 1)) / (true_counts.shape[0] * duration)  # [N]
    error = np.abs(gen_hz - true_hz)
    corr = float(np.corrcoef(gen_hz, true_hz)[0, 1]) if gen_hz.std() > 0 and true_hz.std() > 0 else float("nan")
    return {
        "rate MAE (Hz)": float(error.mean()),
        "rate relative error": float(error.sum() / max(true_hz.sum(), 1e-12)),
        "rate corr": corr,
        "mean rate true (Hz)": float(true_hz.mean()),
        "mean rate generated (Hz)": float(gen_hz.mean()),
    }


def _reference_bits(recording: Recording, split: str, bin_size: float, duration: float, counts: np.ndarray,
                    dataset: Any, behavior_key: str | None = None) -> dict[str, float]:
    out = _history_glm_bits(recording, split, bin_size, duration, behavior_key)
    train = trial_arrays(recording, split="train", bin_size=bin_size, window=duration, behavior_key=None)
    test = trial_arrays(recording, split=split, bin_size=bin_size, window=duration, behavior_key=None)
    if train.conditions is not None and test.conditions is not None:
        psth = {c: smooth_spikes(train.counts[train.conditions == c].mean(0, keepdims=True), bin_size, KERNEL_SD)[0]
                for c in np.unique(train.conditions)}
        overall = smooth_spikes(train.counts.mean(0, keepdims=True), bin_size, KERNEL_SD)[0]
        rates = np.stack([psth.get(c, overall) for c in test.conditions]) + RATE_FLOOR
        out["bits/spike condition PSTH"] = bits_per_spike(rates, counts)
    if dataset is not None and recording.session in [r.session for r in dataset.recordings]:
        true = np.stack([dataset.true_rate_counts(recording.session, bin_size, t0, t0 + duration)
                         for t0 in test.starts])
        out["bits/spike oracle"] = bits_per_spike(true, counts)
    return out


def _history_glm_bits(recording: Recording, split: str, bin_size: float, duration: float,
                      behavior_key: str | None) -> dict[str, float]:
    """``bits/spike history GLM``: tuned on the val trials (fixed settings when there are none), scored on ``split``."""
    key = behavior_key if behavior_key in recording.behavior else None

    def arrays(name: str) -> Any:
        return trial_arrays(recording, split=name, bin_size=bin_size, window=duration, behavior_key=key)

    glm = HistoryGLM(use_behavior=key is not None)
    train, test = arrays("train"), arrays(split)
    has_val = "split" in recording.trials.columns and np.any(recording.trials.columns["split"].astype(str) == "val")
    if has_val and split != "val":
        glm = tune_on_val(glm, train, arrays("val"), budget=HISTORY_GLM_BUDGET).baseline
    else:
        glm.fit(train, {"history": 3, "alpha": 1e-2})
    return {"bits/spike history GLM": glm.score(test)}


def _behavior_scores(model: Neuroformer, tokenizer: Any, recording: Recording, trials: np.ndarray, split: str,
                     duration: float) -> dict[str, float]:
    key = model.config.behavior_key
    if key not in recording.behavior:
        return {}
    decoded, true = decode_behavior(model, tokenizer, recording, trials, duration=duration)
    train = trial_arrays(recording, split="train", bin_size=0.02, window=duration, behavior_key=key)
    test = trial_arrays(recording, split=split, bin_size=0.02, window=duration, behavior_key=key)
    ridge = RidgeDecoder(lags=5).fit(train.counts, train.behavior)
    return {DECODE_R2: decoding_r2(decoded, true), f"ridge {DECODE_R2}": decoder_score(ridge.predict(test.counts), test)}
