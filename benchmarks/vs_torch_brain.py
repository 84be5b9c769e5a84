"""spikefm POYO vs torch_brain 0.2.1 POYO, side by side, written to ``benchmarks/results/vs_torch_brain.md``.

Configuration (spikefm issues 9 and 20): POYO dim 128, depth 2, 2 heads x 64 (cross and self), 64
latents per 1 s window (8 every 0.125 s), 100 units at 20 Hz (~2,000 spikes per window),
batch 16, AdamW (fused, for both), ``torch.set_num_threads(2)``; the data pipeline runs on one thread.

One synthetic recording (velocity-tuned Poisson units, 100 Hz ``hand_vel``) is written once
to a spikefm store and once to a torch_brain HDF5 file. Each data pipeline reads a batch of
random 1 s windows lazily from its file, tokenizes and collates it. Both models train with
the same objective (MSE on ``hand_vel`` at its 100 Hz sample times), the same optimizer and
the same window order; measurements alternate between implementations inside one process.

torch_brain is the optional ``bench`` extra (``pip install --no-deps torch-brain==0.2.1 ray msgpack protobuf``),
never a runtime dependency of spikefm.

Each invocation is one run of the timings (``--runs N`` repeats them N times in one process); the
runs go to ``vs_torch_brain.runs.jsonl`` next to the report, and ``--append`` keeps the runs already
there, so three consecutive invocations give one results file with the median and spread of all:

    python benchmarks/vs_torch_brain.py                 # one run, fresh runs file (~6 min on a quiet 2-core box)
    python benchmarks/vs_torch_brain.py --append        # one more run, summarized with the earlier ones
    python benchmarks/vs_torch_brain.py --runs 3        # issue 20's three consecutive runs (~8 min)
    python benchmarks/vs_torch_brain.py --steps 6 --curve-steps 20 --out /tmp/x.md   # quick look
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path and benchmarks/tokenize.py would shadow the
# standard library's ``tokenize`` (which dataclasses / inspect import): drop the folder first.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import copy
import datetime
import json
import platform
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch

from spikefm.data.recording import Recording, SpikeTrains, TimeSeries, Units
from spikefm.data.store import open_recording, write_recording
from spikefm.models.poyo import POYO, POYOConfig, poyo_objective
from spikefm.nn.bf16_matmul import use_bf16_matmuls
from spikefm.tokenize import SpikeConfig, SpikeTokenizer, collate
from spikefm.train.optim import adamw

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "vs_torch_brain.md"
PIPELINE_TARGET = 5.0  # x torch_brain's spikes/s (issue 20)
SPIKE_RATE_TARGET = 20e6  # spikes / s on one thread
STEP_TARGET = 0.33  # x torch_brain's float32 training-step time
BF16_SUFFIX = "bf16-matmul"  # rows whose linears multiply in bf16 (spikefm.nn.bf16_matmul)
INFER_TARGET = 0.2  # x torch_brain's inference time
STREAM_TARGET_MS = 1.0  # ms per 50 ms chunk at 200 units, one thread

# Where the time goes (torch.profiler, 1 thread, 2026-12-04 on the 2-core AMD EPYC with AVX2 only, family 23;
# kept here because this script reports end-to-end numbers only). Percentages are of self CPU time of spikefm's
# packed step. ``distance_to_targets`` computes the same budget from each run's own numbers.
PROFILE_NOTES = [
    "- Issue 20, 2026-12-06, adopted: packed rotary attention one sample at a time (`_PackedRotaryAttention`, "
    "3a00485). Before, every sample's keys and values were gathered and rotated first (~30 MB per batch) and "
    "attended afterwards, so the flash kernel read them back from L3 or memory, and autograd kept them for "
    "backward. Now each sample's keys are gathered, rotated and attended while they are in cache, and backward "
    "gathers them again: in alternating A/B steps inference 0.88-0.93x, training step 0.94-0.99x (two threads "
    "0.96x); the step's attention 73 -> 62 ms (0.63 -> 0.71 of the peak, `step_budget_zen4.md`); saved "
    "activations 105 -> 70 MB.",
    "- Issue 20, 2026-12-06, Zen 4, what was tried against the step and what it measured (alternating A/B steps "
    "in one process, 1 thread, packed). The linears are at the peak already: per step their kernels take ~80 ms "
    "at 91-96 GFLOP/s (0.92-0.97 of the 1024^3 `mm` rate), which leaves ~79 ms of the 0.33x budget for the "
    "encoder's attention (3.15 GFLOP forward + backward: 33 ms at the peak, ~68 ms at the fused kernel's ~46 "
    "GFLOP/s) and ~55 ms of norms, GELU, dropout, rotations, gathers and copies. (1) Attention from saved "
    "probabilities (softmax, then 4 `mm` in backward instead of the flash kernel's recompute): 1.01x, no gain; "
    "alone its `mm` reach 88 GFLOP/s, but inside the step a sample's keys, values and probabilities (~3 MB) "
    "overflow the 1 MB L2 and they run at 28-60 GFLOP/s; blocking the keys by 256-1,024 changed nothing. "
    "(2) GEGLU + dropout as one autograd function: 1.01x in training, not adopted; in inference gating in place "
    "(one buffer fewer) gave 0.91-0.98x and is adopted (`GatedMLP` under no-grad). (3) The allocator: 70 minor "
    "page faults and 0.2 ms of system time per step, so glibc's mmap threshold is not a factor. At 2 threads "
    "the step scales 1.3x because the encoder's flash attention scales 1.35x (68 -> 50 ms: memory-bound at "
    "these shapes) and the per-sample `index_add_` of the key gradients runs 2.3x *slower* with 2 threads "
    "(1.5 -> 6.3 ms per step), while the linears scale 1.7-1.8x. (4) `torch.compile` (inductor) on the "
    "feed-forward alone, static shapes (the whole model's graph breaks; above): it compiles in ~17 s, but the "
    "step is 1.18x *slower* with inductor's dropout (its per-element RNG), and without dropout in both arms "
    "the fused GEGLU gains 3% (0.97x): the gating is memory-bound and fusing saves a pass or two, not the step "
    "target's quarter.",
    "- Issue 20, 2026-12-06, machine drift: the same code read 34.0M spikes/s on 2026-12-05 20:15 and "
    "19.2-25.1M on 2026-12-06 04:17-04:20 (torch_brain 2.92M and 2.07-2.64M), and a step took 207 ms one "
    "evening and 213-275 ms across the next morning: the 2-core VM shares its host. Ratios come from one "
    "process alternating the implementations, so they drift less (pipeline 9.3-11.6x). The pipeline line "
    "alternates batch by batch, which costs the faster implementation most: in one process, spikefm read "
    "28.0M / 28.6M spikes/s alternating every batch, 33.8-34.6M in blocks of 8 and 36.6-36.9M in blocks of "
    "40, torch_brain 2.75-2.83M in every case. The record keeps the per-batch alternation (the harder, "
    "same-conditions measure).",
    "- Issue 20, 2026-12-05, bf16 on Zen 4 (AVX-512-BF16): a bf16 `mm` runs at ~2.2x float32's rate here (peak "
    "line above; ~215 vs ~96 GFLOP/s at the linears' shapes, one thread), but `torch.autocast` makes the step "
    "*slower* (1.29x): under autocast the rotations, gating, `cat` and row gathers after each linear run on bf16 "
    "tensors, which these CPU kernels process slower than float32 (profiled inference under autocast: `mul` "
    "25 ms and `cat` 17 ms per batch against a few ms in float32), and the CPU flash-attention kernel is slower "
    "in bf16 (64 x 2,000 keys, 2 heads: 0.97 vs 0.87 ms forward, 3.85 vs 3.39 ms forward + backward). "
    "`spikefm.nn.bf16_matmul` multiplies only the linears in bf16 and hands float32 back: step 207 -> 174 ms, "
    "inference 65 -> 55 ms (one thread). What remains is float32: flash attention ~67 ms of the ~170 ms step "
    "(forward 21, backward 46), the bf16 `mm`s ~38 ms, casts and copies ~12 ms. A bf16 attention from two "
    "`bmm`s and a float32 softmax was slower still (1.44 ms forward per sample): at 64 queries the kernel is "
    "bound by memory traffic, not multiplies. torch_brain with the same bf16 linears gains about as much "
    "(492 -> 411 ms), so at equal precision the ratio is ~0.43x.",
    "- Issue 20, 2026-12-05: AdamW in its fused form (one kernel per parameter, `spikefm.train.optim.adamw`) for "
    "both implementations, as spikefm's trainer now uses it: the optimizer step of this 2.1M-parameter POYO drops "
    "from ~6.6 ms to ~1 ms, spikefm's one-thread step from 204 to 202 ms (Zen 4, quiet): within the ratio's "
    "run-to-run spread, which torch_brain's own variance sets (its one-thread step 506-636 ms across three runs).",
    "- Issue 20 changes (spikefm POYO step, 1 thread, CPU time per step at load ~5: 322 -> ~265 ms; inference "
    "~108 -> ~82 ms): (1) the encoder's per-sample SDPA calls take 4-D [1, H, L, Dh] inputs, which reach the "
    "fused CPU flash kernel; 3-D inputs fell back to the math path (`bmm` + `softmax` + masks, ~25% of the step); "
    "(2) keys / values are gathered head-major straight into per-sample [H, L_b, Dh] tensors (one row gather "
    "per head), rotated in place, and un-rotated / scatter-added per sample in backward: the old [N, 2H, Dh] "
    "layout was transposed, split and re-joined by autograd (`cat` ~25% of the step), and a single ~35 MB "
    "buffer was returned to the OS and page-faulted in again every step; (3) `FastDropout`: masks from 16-bit "
    "lanes of int64 `random_` draws instead of `bernoulli_` (~20 ms per [16, 64, 512] activation on AVX2; "
    "dropout RNG 8.8% -> 1.9% of the step), keep probability rounded to 2^-16, exact inverse scaling; (4) the "
    "per-spike rotary table's cos / sin are written into their interleaved slots instead of stacked "
    "(13.7 -> 4.6 ms per 34,000-spike batch, bit-identical).",
    "- What remains between the step and the matmul peak (torch.profiler, 1 thread, quiet machine, load 0.3-1.0, "
    "2026-12-04; self CPU per training step of ~276 ms under the profiler): `mm` (backward of the linears) 64 ms, "
    "flash attention backward 54 ms and forward 24 ms, `addmm` (forward linears) 28 ms: the matmul-class kernels "
    "are 170 ms (62%); elementwise `mul` / `mul_` 21 ms (rotations, GEGLU gating, dropout), `copy_` 15 ms "
    "(per-sample gradient clones, GEGLU's non-contiguous halves), GELU forward + backward 13 ms, `cat` 6.5 ms, "
    "dropout RNG 4.4 ms, row gathers + scatter-adds 6.4 ms, AdamW 6.6 ms. The linears run at ~72-82 GFLOP/s "
    "(0.8-0.9 of the 1024^3 peak); the encoder's 16 per-sample attentions (64 queries against ~2,000 keys) at "
    "~42 GFLOP/s forward, and their backward recomputes the scores. Inference (~84 ms per batch under the "
    "profiler): `addmm` 28 ms, flash attention 25 ms, k/v row gathers 6 ms, GELU 4.8 ms, rotary sin / cos / "
    "remainder 5.3 ms, copies 3.6 ms.",
    "- Why the step and inference targets were not met on the AVX2 EPYC (quiet run, 1 thread): torch_brain's step is "
    "612 ms and its inference 254 ms, so 0.33x is 202 ms for 11.67 GFLOP (58 GFLOP/s = 0.63 of the measured "
    "91 GFLOP/s peak) and 0.2x is 51 ms for 3.67 GFLOP (72 GFLOP/s = 0.79 of peak). spikefm runs both at ~0.52 "
    "of peak (244 ms, 78 ms). The floor at 100% of peak is 128 ms (0.21x) and 40 ms (0.16x): the inference "
    "target needs every kernel, attention on its short-M shapes included, within ~20% of a square matmul's rate; "
    "the step target needs the ~100 ms of memory-bound elementwise / copy / RNG work (~38%) cut by three "
    "quarters, which is a fusing compiler's job. `torch.compile` cannot do it here (above: ~8 min to compile, "
    "slower after) and this CPU has no bf16 matrix units. Under load (2026-12-04 morning, load ~3) the ratios "
    "read 0.34x / 0.25x because other jobs slowed torch_brain's larger, many-thread-friendly ops more than "
    "spikefm's; the quiet runs are the honest ones.",
    "- 2-thread timings under load: when other jobs share the 2 cores, every 2-thread parallel region waits for a "
    "descheduled second thread, so a step of many small ops (spikefm: 16 per-sample attention calls and row "
    "gathers per layer, forward and backward) loses more than one of few large ops (torch_brain's padded batch): "
    "at load ~3 spikefm's 2-thread step took 3.5x its 1-thread time. The 1-thread ratio tracks the work; judge the "
    "2-thread lines on a quiet machine (at load 0.7 on 2026-11-25 the 2-thread step was 0.64x its 1-thread time).",
    "- torch_brain 0.2.1, one training step: `mm` on every padded spike token's k/v projection, `cat` for its "
    "rotary tables and `rotate_half`, float64 `sin`/`cos`; it computes 1.7x spikefm's model FLOPs per step "
    "(k/v projection per token instead of per distinct row; padded keys).",
    "- Data pipeline, spikefm (1 thread, per batch of 16): memory-mapped window reads validated once at open, "
    "tokenize and collate without per-unit Python loops (`benchmarks/data_path.py` has the stage breakdown). "
    "Alone in a process on a quiet machine it reads ~21.7M spikes/s (packed); alternating batch by batch with "
    "torch_brain here (which evicts its caches) it reads ~19.5-19.8M.",
]


@dataclass(frozen=True)
class Setup:
    """The issue's configuration."""

    dim: int = 128
    depth: int = 2
    heads: int = 2
    head_dim: int = 64
    latents_per_step: int = 8
    latent_step: float = 0.125
    n_units: int = 100
    rate_hz: float = 20.0
    window: float = 1.0
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4


# ---------------------------------------------------------------------------- data
def build_recording(duration: float, setup: Setup, seed: int) -> Recording:
    """Poisson units cosine-tuned to a smooth 2-D velocity, mean rate ``setup.rate_hz``.

    Rates are piecewise constant on a 5 ms grid; each spike sits uniformly inside its bin.
    """
    rng = np.random.default_rng(seed)
    dt = 0.005
    grid = np.arange(0.0, duration, dt)
    freqs = rng.uniform(0.1, 1.0, size=(2, 6))
    phases = rng.uniform(0, 2 * np.pi, size=(2, 6))
    velocity = np.sin(2 * np.pi * freqs[..., None] * grid + phases[..., None]).sum(1).T / np.sqrt(3)  # [T, 2]
    preferred = rng.normal(size=(2, setup.n_units))
    log_rate = velocity @ (0.5 * preferred)  # [T, U]
    rates = setup.rate_hz * np.exp(log_rate) / np.exp(log_rate).mean(0)
    counts = rng.poisson(rates * dt)  # [T, U]
    bins, units = np.nonzero(counts)
    bins, units = np.repeat(bins, counts[bins, units]), np.repeat(units, counts[bins, units])
    times = (bins + rng.uniform(size=bins.size)) * dt
    order = np.argsort(times, kind="stable")
    stamps = np.arange(0.0, duration, 0.01)
    hand_vel = np.stack([np.interp(stamps, grid, velocity[:, i]) for i in range(2)], axis=1)
    return Recording(
        spikes=SpikeTrains(times=times[order], units=units[order].astype(np.int64)),
        units=Units(ids=np.array([f"unit{i:03d}" for i in range(setup.n_units)])),
        session="bench",
        behavior={"hand_vel": TimeSeries(stamps, hand_vel.astype(np.float32), ("x", "y"))},
        start=0.0,
        end=duration,
    )


def write_torch_brain_store(recording: Recording, path: Path) -> None:
    """The same recording as a torch_brain ``Data`` HDF5 file (its lazy format)."""
    from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries

    domain = Interval(recording.start, recording.end)
    behavior = recording.behavior["hand_vel"]
    data = Data(
        spikes=IrregularTimeSeries(timestamps=recording.spikes.times, unit_index=recording.spikes.units, domain=domain),
        hand=IrregularTimeSeries(timestamps=behavior.timestamps, vel=np.asarray(behavior.values), domain=domain),
        units=ArrayDict(id=np.array(recording.unit_keys())),
        session=Data(id=recording.session),
        domain=domain,
    )
    with h5py.File(path, "w") as handle:
        data.to_hdf5(handle)


def window_starts(duration: float, setup: Setup, n: int, seed: int) -> np.ndarray:
    """``n`` random window starts on a 1 ms grid."""
    rng = np.random.default_rng(seed)
    return np.round(rng.uniform(0.0, duration - setup.window, size=n), 3)


# ---------------------------------------------------------------------------- pipelines
class OursPipeline:
    """LazyRecording window -> SpikeTokenizer -> collate (padded or packed)."""

    def __init__(self, path: Path, setup: Setup, *, pack: bool) -> None:
        self.store = open_recording(path)
        self.tokenizer = SpikeTokenizer(SpikeConfig(query="behavior", behavior_keys=("hand_vel",)))
        self.window, self.pack = setup.window, pack

    def __call__(self, starts: Sequence[float]):
        samples = [self.tokenizer(self.store.window(t, t + self.window)) for t in starts]
        return collate(samples, pack=self.pack)


class TorchBrainPipeline:
    """Lazy ``Data.slice`` -> ``POYO.tokenize`` + output queries (as its recipes add) -> ``collate``."""

    def __init__(self, path: Path, model, setup: Setup) -> None:
        from torch_brain.batching import collate as tb_collate
        from torch_brain.batching import pad8, track_mask8
        from torch_brain.data import Data

        self.handle = h5py.File(path, "r")
        self.data = Data.from_hdf5(self.handle, lazy=True)
        self.model, self.window = model, setup.window
        self._collate, self._pad8, self._mask8 = tb_collate, pad8, track_mask8

    def sample(self, start: float) -> dict:
        data = self.data.slice(start, start + self.window)
        out = self.model.tokenize(data)
        out["output_timestamps"] = self._pad8(data.hand.timestamps.astype(np.float32))
        out["output_values"] = self._pad8(data.hand.vel.astype(np.float32))
        out["output_mask"] = self._mask8(data.hand.timestamps)
        return out

    def __call__(self, starts: Sequence[float]) -> dict:
        return self._collate([self.sample(t) for t in starts])


# ---------------------------------------------------------------------------- models
def build_ours(recording: Recording, setup: Setup, seed: int) -> POYO:
    torch.manual_seed(seed)
    config = POYOConfig(
        dim=setup.dim, depth=setup.depth, cross_heads=setup.heads, self_heads=setup.heads, head_dim=setup.head_dim,
        latents_per_step=setup.latents_per_step, latent_step=setup.latent_step, unit_dropout=False,
    )  # fmt: skip  # dropouts stay at torch_brain's defaults (0.2 / 0.4); unit dropout is a data transform there
    return POYO(config, unit_keys=recording.unit_keys(), sessions=[recording.session], behavior_dim=2)


def build_torch_brain(recording: Recording, setup: Setup, seed: int):
    from torch_brain.models import POYO as TBPOYO

    torch.manual_seed(seed)
    model = TBPOYO(
        sequence_length=float(setup.window), latent_step=setup.latent_step, num_latents_per_step=setup.latents_per_step,
        dim_out=2, dim=setup.dim, depth=setup.depth, dim_head=setup.head_dim, cross_heads=setup.heads,
        self_heads=setup.heads,
    )  # fmt: skip
    model.unit_emb.initialize_vocab(recording.unit_keys())
    model.session_emb.initialize_vocab([recording.session])
    return model


def ours_loss(model: POYO, batch) -> torch.Tensor:
    return poyo_objective(model(batch), batch)[0]


def torch_brain_loss(model, batch: dict) -> torch.Tensor:
    inputs = {k: v for k, v in batch.items() if k != "output_values"}
    output = model(**inputs)  # [B, Q, 2]
    mask = batch["output_mask"]
    return torch.nn.functional.mse_loss(output[mask], batch["output_values"][mask])


@dataclass
class Impl:
    """One implementation under test: its pipeline, model, loss and optimizer."""

    name: str
    pipeline: Callable
    model: torch.nn.Module
    loss: Callable
    spikes: Callable  # batch -> real spike tokens (excluding START/END)
    computed: Callable  # batch -> (real input tokens, attention keys computed, rows through norm + k/v projection)
    optimizer: torch.optim.Optimizer = field(init=False)
    setup: Setup = field(default_factory=Setup)

    def __post_init__(self) -> None:
        # The same optimizer for both: torch's AdamW in its fused form (spikefm's trainer uses it where torch has it).
        self.optimizer = adamw(self.model.parameters(), lr=self.setup.lr, weight_decay=self.setup.weight_decay)

    def train_step(self, batch) -> float:
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model, batch)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def infer(self, batch) -> None:
        self.model.eval()
        with torch.inference_mode():
            self.loss(self.model, batch)


def make_impls(
    recording: Recording, paths: dict[str, Path], setup: Setup, seed: int, with_tb: bool, bf16: bool = False
) -> list[Impl]:
    """spikefm padded and packed, torch_brain; with ``bf16``, spikefm packed and torch_brain again with their linears
    multiplied in bf16 (``spikefm.nn.bf16_matmul``, the trainer's ``precision: bf16-matmul``), same weights."""

    def ours(pack: bool, bf16_matmuls: bool = False) -> Impl:
        model = build_ours(recording, setup, seed)
        if bf16_matmuls:
            use_bf16_matmuls(model)
        return Impl(
            name=f"spikefm POYO, {'packed' if pack else 'padded'}{' ' + BF16_SUFFIX if bf16_matmuls else ''}",
            pipeline=OursPipeline(paths["ours"], setup, pack=pack), model=model, loss=ours_loss,
            spikes=lambda b: int(((b.token_type == 0) & b.mask).sum()),
            computed=lambda b: ours_counts(b, model), setup=setup,
        )  # fmt: skip

    def theirs(bf16_matmuls: bool = False) -> Impl:
        model = build_torch_brain(recording, setup, seed)
        if bf16_matmuls:
            use_bf16_matmuls(model)
        return Impl(
            name=f"torch_brain 0.2.1 POYO (pad8){', ' + BF16_SUFFIX if bf16_matmuls else ''}",
            pipeline=TorchBrainPipeline(paths["tb"], model, setup), model=model, loss=torch_brain_loss,
            spikes=lambda b: int(((b["input_token_type"] == 0) & b["input_mask"]).sum()),
            computed=lambda b: (int(b["input_mask"].sum()), int(b["input_mask"].numel()), int(b["input_mask"].numel())),
            setup=setup,
        )  # fmt: skip

    impls = [ours(False), ours(True)] + ([theirs()] if with_tb else [])
    if bf16:
        impls += [ours(True, bf16_matmuls=True)] + ([theirs(bf16_matmuls=True)] if with_tb else [])
    return impls


def ours_counts(batch, model: POYO) -> tuple[int, int, int]:
    """Real input tokens, attention keys the encoder's attention kernels receive (counted by
    wrapping SDPA and the CPU flash kernel that packed keys call directly, during one forward
    pass: a padded [B, H, L_max, Dh] call counts B * L_max keys, a per-sample [1, H, L_b, Dh]
    call L_b) and rows through norm + k/v projection (the distinct (unit, token type) rows of the
    batch)."""
    from unittest import mock

    from spikefm.nn import attention as attention_module

    functional = torch.nn.functional
    keys: list[int] = []

    def counting(kernel):
        def counted(q, k, v, *args, **kwargs):
            keys.append(k.shape[:-3].numel() * k.shape[-2])  # batch dims (not heads) x key length
            return kernel(q, k, v, *args, **kwargs)

        return counted

    encoder = model.perceiver.encoder.attention
    encoder_forward = encoder.forward

    def counted_forward(*args, **kwargs):  # count the kernels' keys inside the encoder only
        with mock.patch.object(functional, "scaled_dot_product_attention",
                               counting(functional.scaled_dot_product_attention)), \
                mock.patch.object(attention_module, "_FLASH_CPU", counting(attention_module._FLASH_CPU)):  # fmt: skip
            return encoder_forward(*args, **kwargs)

    with mock.patch.object(encoder, "forward", counted_forward), torch.no_grad():
        model.eval()
        model(batch)
    rows = model._token_rows(batch)[0].shape[0]
    return int(batch.mask.sum()), sum(keys), rows


# ---------------------------------------------------------------------------- measurements
def alternate(impls: Sequence[Impl], rounds: int, run: Callable[[Impl, int], None]) -> dict[str, list[float]]:
    """Seconds per call of ``run(impl, round)``, alternating implementations every round."""
    times: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for r in range(rounds):
        order = impls if r % 2 == 0 else list(reversed(impls))
        for impl in order:
            t0 = time.perf_counter()
            run(impl, r)
            times[impl.name].append(time.perf_counter() - t0)
    return times


def saved_activation_bytes(impl: Impl, batch) -> int:
    """Bytes autograd keeps for the backward pass of one training step (distinct storages).

    This is the part of peak memory that scales with the batch; parameters and AdamW state
    are reported separately.
    """
    seen: dict[int, int] = {}

    def pack_hook(tensor: torch.Tensor):
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    impl.model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack_hook, lambda t: t):
        loss = impl.loss(impl.model, batch)
    loss.backward()
    impl.model.zero_grad(set_to_none=True)
    return sum(seen.values())


def state_bytes(impl: Impl) -> int:
    """Parameters + gradients + AdamW's two moments."""
    return 4 * sum(p.numel() * p.element_size() for p in impl.model.parameters())


@dataclass
class Row:
    name: str
    pipeline_ms: float = float("nan")
    spikes_per_s: float = float("nan")
    steps: dict[int, list[float]] = field(default_factory=dict)  # threads -> sorted step seconds
    infer_ms: dict[int, float] = field(default_factory=dict)  # threads -> median inference ms
    activations_mb: float = float("nan")
    state_mb: float = float("nan")
    counts: tuple[int, int, int] = (0, 0, 0)  # real tokens, attention keys computed, projected rows
    losses: list[float] = field(default_factory=list)

    def step_ms(self, threads: int) -> float:
        return 1e3 * statistics.median(self.steps[threads]) if self.steps.get(threads) else float("nan")

    def step_cell(self, threads: int) -> str:
        steps = self.steps.get(threads)
        if not steps:
            return "-"
        q1, q3 = 1e3 * steps[len(steps) // 4], 1e3 * steps[3 * len(steps) // 4]
        return f"{self.step_ms(threads):.0f} ({q1:.0f}-{q3:.0f})"

    def cells(self) -> str:
        real, keys, rows = self.counts
        infer = " / ".join(f"{self.infer_ms[t]:.0f}" for t in sorted(self.infer_ms, reverse=True))
        return (
            f"| {self.name} | {self.pipeline_ms:.2f} | {self.spikes_per_s / 1e6:.2f} | {self.step_cell(2)} "
            f"| {self.step_cell(1)} | {infer} | {self.activations_mb:.0f} | {self.state_mb:.1f} "
            f"| {real / max(keys, 1):.3f} | {rows / max(real, 1):.3f} |"
        )


def measure_pipelines(impls: Sequence[Impl], starts: np.ndarray, rows: dict[str, Row], setup: Setup) -> None:
    torch.set_num_threads(1)
    batches = starts.reshape(-1, setup.batch_size)
    for impl in impls:  # warm-up (opens files, builds caches)
        impl.pipeline(batches[0])
    spikes = {impl.name: 0 for impl in impls}

    def run(impl: Impl, r: int) -> None:
        spikes[impl.name] += impl.spikes(impl.pipeline(batches[r % len(batches)]))

    times = alternate(impls, len(batches), run)
    for impl in impls:
        row = rows[impl.name]
        row.pipeline_ms = 1e3 * statistics.median(times[impl.name])
        row.spikes_per_s = spikes[impl.name] / sum(times[impl.name])


def measure_model(impls: Sequence[Impl], starts: np.ndarray, rows: dict[str, Row], args: argparse.Namespace) -> None:
    """Training steps and inference on pre-collated batches, alternating implementations."""
    batches = starts.reshape(-1, args.setup.batch_size)[: args.steps]
    prepared = {impl.name: [impl.pipeline(b) for b in batches] for impl in impls}
    for threads in args.threads:
        torch.set_num_threads(threads)
        for impl in impls:
            for batch in prepared[impl.name][: args.warmup]:
                impl.train_step(batch)
        times = alternate(impls, len(batches) - args.warmup,
                          lambda impl, r: impl.train_step(prepared[impl.name][args.warmup + r]))
        infer = alternate(impls, args.infer_rounds, lambda impl, r: impl.infer(prepared[impl.name][r]))
        for impl in impls:
            rows[impl.name].steps[threads] = sorted(times[impl.name])
            rows[impl.name].infer_ms[threads] = 1e3 * statistics.median(infer[impl.name])
        print(*(r.cells() for r in rows.values()), sep="\n", flush=True)
    for impl in impls:
        row = rows[impl.name]
        row.activations_mb = saved_activation_bytes(impl, prepared[impl.name][0]) / 2**20
        row.state_mb = state_bytes(impl) / 2**20
        counts = [impl.computed(b) for b in prepared[impl.name]]
        row.counts = tuple(sum(c[i] for c in counts) for i in range(3))


def loss_curves(recording, paths, starts: np.ndarray, rows: dict[str, Row], args: argparse.Namespace) -> None:
    """Fresh models from the same seed, trained on the same windows, alternating steps (1 thread:
    these runs check the numerics, not the speed). Step ``i`` of every model draws its dropout
    masks after ``torch.manual_seed(seed + i)``."""
    torch.set_num_threads(1)
    impls = make_impls(recording, paths, args.setup, args.seed, not args.no_torch_brain)
    impls = [impl for impl in impls if "padded" not in impl.name]  # padded == packed numerics (tests/nn)
    batches = starts.reshape(-1, args.setup.batch_size)[: args.curve_steps]
    for i, b in enumerate(batches):
        for impl in impls:
            torch.manual_seed(args.seed + i)
            rows[impl.name].losses.append(impl.train_step(impl.pipeline(b)))


# ---------------------------------------------------------------------------- allocator
def steady_allocator() -> str:
    """Keep freed buffers in the process (glibc): malloc's mmap threshold at 256 MiB, its trim threshold at 1 GiB.

    With glibc's defaults, a buffer above the (dynamic) mmap threshold comes as fresh pages and a freed heap top goes
    back to the OS, so a step that allocates tens of MB may page-fault them in again every time, or not, depending
    on the heap's history in that process: torch_brain 0.2.1's one-thread step took ~40k minor page faults and
    70-90 ms of system time per step in some processes and 2-4k faults and 4-6 ms in others (2026-12-06, Zen 4).
    Set once, before any timing, for every implementation alike. Returns the line the report's setup gives.
    """
    import ctypes

    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameters
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = libc.mallopt(m_mmap_threshold, 256 << 20) == 1 and libc.mallopt(m_trim_threshold, 1 << 30) == 1
    except (OSError, AttributeError):
        ok = False
    if ok:
        return ("glibc malloc with its mmap threshold at 256 MiB and trim threshold at 1 GiB, set at start for every "
                "implementation (`steady_allocator`: freed buffers stay in the process, so no step page-faults its "
                "buffers in again)")
    return "the platform's default allocator (not glibc: `steady_allocator` set nothing)"


# ---------------------------------------------------------------------------- hardware limits
def matmul_peak(threads: int, size: int = 1024, repeats: int = 12, dtype: torch.dtype = torch.float32) -> float:
    """The machine's matmul rate: best GFLOP/s of ``[size, size] @ [size, size]`` (float32: MKL sgemm; bf16: oneDNN)."""
    torch.set_num_threads(threads)
    a, b, out = (torch.randn(size, size, dtype=dtype) for _ in range(3))
    torch.mm(a, b, out=out)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9


def counted_flops(run: Callable[[], None]) -> int:
    """Matmul + attention FLOPs of ``run()`` by ``FlopCounterMode`` (CPU's fused SDPA kernels added)."""
    return sum(counted_flops_by_op(run).values())


def counted_flops_by_op(run: Callable[[], None]) -> dict[str, int]:
    """:func:`counted_flops` per op (``"aten.addmm"``, ``"aten._scaled_dot_product_flash_attention_for_cpu"``, ...)."""
    from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

    def forward(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flop_count(q, k, v)

    def backward(grad, q, k, v, *args, out_shape=None, **kwargs) -> int:
        return sdpa_backward_flop_count(grad, q, k, v)

    aten = torch.ops.aten
    mapping = {aten._scaled_dot_product_flash_attention_for_cpu: forward,
               aten._scaled_dot_product_flash_attention_for_cpu_backward: backward}
    with FlopCounterMode(display=False, custom_mapping=mapping) as counter:
        run()
    return {str(op): flops for op, flops in counter.get_flop_counts()["Global"].items()}


def step_flops(impl: Impl, batch) -> tuple[int, int]:
    """Model FLOPs of one training step (forward + backward) and of one inference forward."""
    impl.model.train()

    def train() -> None:
        impl.loss(impl.model, batch).backward()

    train_flops = counted_flops(train)
    impl.model.zero_grad(set_to_none=True)
    return train_flops, counted_flops(lambda: impl.infer(batch))


@dataclass
class Variant:
    """spikefm POYO (packed) trained one other way: bf16 autocast, bf16 linears or ``torch.compile``."""

    name: str
    impl: Impl
    initial_state: dict = field(default_factory=dict)  # weights before any step (fresh curves start here)
    first_ms: float = float("nan")  # first step (includes compilation)
    error: str = ""  # why this variant could not train, if it could not
    steps: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    reseeded: list[float] = field(default_factory=list)  # float32 only: the same run with other dropout draws

    @property
    def step_ms(self) -> float:
        return 1e3 * statistics.median(self.steps) if self.steps else float("nan")


def make_variants(
    recording: Recording, paths: dict[str, Path], setup: Setup, seed: int, *, with_compile: bool
) -> list[Variant]:
    """fp32, bf16 autocast, bf16 linears and (``with_compile``) torch.compile copies of spikefm POYO (packed), same
    weights."""

    def ours() -> Impl:
        model = build_ours(recording, setup, seed)
        return Impl(name="spikefm POYO, packed", pipeline=OursPipeline(paths["ours"], setup, pack=True), model=model,
                    loss=ours_loss, spikes=len, computed=len, setup=setup)  # fmt: skip

    fp32, bf16, bf16_matmuls = ours(), ours(), ours()

    def bf16_loss(model, batch) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return ours_loss(model, batch)

    bf16.loss = bf16_loss
    use_bf16_matmuls(bf16_matmuls.model)
    named = [("float32", fp32), ("bf16 autocast", bf16), ("bf16 matmuls (linears only; `precision: bf16-matmul`)",
                                                           bf16_matmuls)]
    if with_compile:
        compiled = ours()
        compiled_model = torch.compile(compiled.model, dynamic=True)
        compiled.loss = lambda model, batch: ours_loss(compiled_model, batch)
        named.append(("torch.compile (inductor)", compiled))
    for name, impl in named:
        impl.name = f"spikefm POYO, packed, {name}"
    return [Variant(name, impl, initial_state=copy.deepcopy(impl.model.state_dict())) for name, impl in named]


def measure_variants(variants: Sequence[Variant], batches: Sequence, rounds: int) -> None:
    """Training-step time of each variant, alternating, 1 thread, after one untimed (compiling) step."""
    torch.set_num_threads(1)
    working = []
    for v in variants:
        t0 = time.perf_counter()
        try:
            v.impl.train_step(batches[0])
        except Exception as error:  # noqa: BLE001  (a variant this torch cannot run is reported, not fatal)
            v.error = f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"
            continue
        v.first_ms = 1e3 * (time.perf_counter() - t0)
        working.append(v)
    impls = [v.impl for v in working]
    times = alternate(impls, rounds, lambda impl, r: impl.train_step(batches[1 + r % (len(batches) - 1)]))
    for v in working:
        v.steps = times[v.impl.name]


def variant_curves(variants: Sequence[Variant], batches: Sequence, seed: int) -> None:
    """200-step curves of float32 and of every variant faster than it, from fresh copies of the same weights."""
    torch.set_num_threads(1)
    reference = variants[0].step_ms
    chosen = [v for v in variants if v is variants[0] or (v.steps and v.step_ms < reference)]
    if len(chosen) == 1:
        return
    for v in chosen:  # fresh weights and optimizer state: copy the untouched model's initial state
        v.impl.model.load_state_dict(v.initial_state)
        v.impl.__post_init__()
    for i, batch in enumerate(batches):
        for v in chosen:
            torch.manual_seed(seed + i)
            v.losses.append(v.impl.train_step(batch))
    fp32 = variants[0]  # the noise floor: float32 again from the same weights, other dropout draws
    fp32.impl.model.load_state_dict(fp32.initial_state)
    fp32.impl.__post_init__()
    for i, batch in enumerate(batches):
        torch.manual_seed(RESEED + seed + i)
        fp32.reseeded.append(fp32.impl.train_step(batch))


# torch.compile(model, dynamic=True), measured once with `--compile` (2026-12-04, AMD EPYC 2 cores, load ~5, 1 thread):
COMPILE_NOTE = ("first step 482.6 s (compilation), next step 6,668 ms vs float32's 384 ms in the same run "
                "(graph breaks at the per-sample `.tolist()` lengths and masked copies; recompiles per key count)")
CURVE_TOLERANCE = 0.2  # every 20-step mean of a variant's loss within 20% of float32's ...
RESEED = 10_000  # ... or within float32's own distance from itself with other dropout draws (seeds + RESEED)


def curve_within_tolerance(losses: Sequence[float], reference: Sequence[float], window: int = 20) -> tuple[bool, float]:
    """Whether every ``window``-step mean of ``losses`` is within CURVE_TOLERANCE of the reference's; the worst ratio - 1."""
    n = min(len(losses), len(reference)) // window * window
    ours = np.asarray(losses[:n]).reshape(-1, window).mean(1)
    ref = np.asarray(reference[:n]).reshape(-1, window).mean(1)
    worst = float(np.max(np.abs(ours / ref - 1.0))) if n else float("nan")
    return worst <= CURVE_TOLERANCE, worst


# ---------------------------------------------------------------------------- streaming
def load_benchmark(name: str):
    """Another script of this folder as a module (its functions are reused, not copied)."""
    import importlib.util

    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def measure_streaming(duration: float, units: Sequence[int] = (200, 1000)) -> list[dict]:
    """Per-50 ms-chunk cost of POSSM and the unified model (tiny presets) on one thread: p50 / p99 in ms,
    with ``possm_latency.time_stream`` on ``possm_latency.make_recording`` streams (15 Hz per unit)."""
    possm_latency, unified_latency = load_benchmark("possm_latency"), load_benchmark("unified_latency")
    torch.set_num_threads(1)
    out = []
    for n_units in units:
        recording = possm_latency.make_recording(n_units, 15.0, duration, seed=0)
        for name in ("possm", "unified"):
            model = unified_latency.build(name, recording)
            ms = possm_latency.time_stream(model, recording, warmup=20)
            out.append({"model": name, "units": n_units, "p50": float(np.median(ms)),
                        "p99": float(np.percentile(ms, 99)), "chunks": int(ms.size)})  # fmt: skip
    return out


# ---------------------------------------------------------------------------- runs
def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
                             cwd=Path(__file__).resolve().parent)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_summary(rows: dict[str, Row], threads: Sequence[int], load: tuple[float, float]) -> dict:
    """One run's ratios to torch_brain's float32 rows (same process) and spikes/s: a line of the runs file. Rows in
    bf16 matmuls (``BF16_SUFFIX``) get their ratios to torch_brain's float32 time in ``step_ratio`` / ``infer_ratio``
    and to torch_brain's own bf16-matmul time in ``bf16_same_precision``; the pipeline is the float32 rows'."""
    tb = next((r for n, r in rows.items() if n.startswith("torch_brain") and BF16_SUFFIX not in n), None)
    tb16 = next((r for n, r in rows.items() if n.startswith("torch_brain") and BF16_SUFFIX in n), None)
    ours = {n.split(", ")[-1]: r for n, r in rows.items() if n.startswith("spikefm")}
    fp32 = {k: r for k, r in ours.items() if BF16_SUFFIX not in k}
    summary = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "commit": commit(),
        "load": [round(x, 2) for x in load], "spikes_per_s": {k: r.spikes_per_s for k, r in fp32.items()},
        "step_ms": {str(t): {k: r.step_ms(t) for k, r in ours.items()} for t in threads},
    }  # fmt: skip
    if tb is not None:
        summary["pipeline_ratio"] = {k: r.spikes_per_s / tb.spikes_per_s for k, r in fp32.items()}
        summary["step_ratio"] = {str(t): {k: r.step_ms(t) / tb.step_ms(t) for k, r in ours.items()} for t in threads}
        summary["infer_ratio"] = {str(t): {k: r.infer_ms[t] / tb.infer_ms[t] for k, r in ours.items()} for t in threads}
    if tb16 is not None:
        summary["bf16_same_precision"] = {str(t): {
            f"step {k}": r.step_ms(t) / tb16.step_ms(t) for k, r in ours.items() if BF16_SUFFIX in k} | {
            f"inference {k}": r.infer_ms[t] / tb16.infer_ms[t] for k, r in ours.items() if BF16_SUFFIX in k}
            for t in threads}  # fmt: skip
    return summary


def read_runs(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """``median (min-max)`` of repeated runs (just the value for one run)."""
    values = [v for v in values if v == v]
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def best_layout(run: dict, key: str, threads: str | None, better=min, bf16: bool = False) -> float:
    """The best float32 layout's value (``bf16``: the best bf16-matmul row's)."""
    table = run.get(key, {})
    table = table.get(threads, {}) if threads is not None else table
    values = [v for k, v in table.items() if (BF16_SUFFIX in k) == bf16]
    return better(values) if values else float("nan")


# ---------------------------------------------------------------------------- report
def met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


@dataclass(frozen=True)
class Target:
    """One float32 target line: its text, a short name for a run's misses, a run's value and the test it must pass."""

    text: str
    short: str
    value: Callable[[dict], float]  # nan where the run did not measure it
    ok: Callable[[float], bool]
    fmt: str = "{:.2f}"
    unit: str = "x"


def float32_targets(runs: Sequence[dict], threads: Sequence[int]) -> list[Target]:
    """Issue 20's float32 lines: spikes/s, pipeline ratio, each layout's step and the best inference per thread count."""
    nan = float("nan")
    lines = [Target(f"data pipeline >= {SPIKE_RATE_TARGET / 1e6:.0f}M spikes/s on one thread", "spikes/s",
                    lambda r: best_layout(r, "spikes_per_s", None, max) / 1e6, lambda v: v >= SPIKE_RATE_TARGET / 1e6,
                    "{:.1f}", "M")]  # fmt: skip
    if not runs or "pipeline_ratio" not in runs[0]:
        return lines
    lines.append(Target(f"data pipeline >= {PIPELINE_TARGET:g}x torch_brain's spikes/s (best layout)", "pipeline ratio",
                        lambda r: best_layout(r, "pipeline_ratio", None, max), lambda v: v >= PIPELINE_TARGET))
    for t in map(str, threads):
        for layout in (k for k in runs[-1]["step_ratio"][t] if BF16_SUFFIX not in k):
            lines.append(Target(f"training step <= {STEP_TARGET}x torch_brain's time, float32, {t} thread(s), {layout}",
                                f"step {layout} {t} thr", lambda r, t=t, k=layout: r["step_ratio"][t].get(k, nan),
                                lambda v: v <= STEP_TARGET))  # fmt: skip
        lines.append(Target(f"inference <= {INFER_TARGET}x torch_brain's time, {t} thread(s) (best layout)",
                            f"inference {t} thr", lambda r, t=t: best_layout(r, "infer_ratio", t),
                            lambda v: v <= INFER_TARGET))  # fmt: skip
    return lines


def targets(runs: Sequence[dict], threads: Sequence[int], streaming: Sequence[dict]) -> list[str]:
    """Every target line of issue 20, on the median over ``runs`` (a regression shows as NOT met), with how many runs
    meet each line, and the issue's done-when line (the last three runs each meet every float32 line)."""
    of = f"median of {len(runs)} run{'s' if len(runs) > 1 else ''}"
    float32 = float32_targets(runs, threads)
    lines = []
    for target in float32:
        values = [v for v in map(target.value, runs) if v == v]
        count = sum(bool(target.ok(v)) for v in values)
        lines.append(f"- {target.text}: {spread(values, target.fmt)}{target.unit} ({of}; {count} of {len(values)} "
                     f"meet it) ({met(target.ok(statistics.median(values)))})")
    if len(float32) == 1:
        return lines + ["- torch_brain ratios: not measured (torch_brain not installed) (**NOT met**)"]
    lines.append(done_when_line(runs, float32))
    lines += bf16_target_lines(runs, threads)
    for s in streaming:
        if s["units"] == 200:
            lines.append(f"- streaming < {STREAM_TARGET_MS:g} ms per 50 ms chunk at 200 units, 1 thread ({s['model']}): "
                         f"p50 {s['p50']:.3f} ms ({met(s['p50'] < STREAM_TARGET_MS)}; p99 {s['p99']:.3f} ms, "
                         f"{'also' if s['p99'] < STREAM_TARGET_MS else 'not'} under {STREAM_TARGET_MS:g} ms)")
    return lines


def done_when_line(runs: Sequence[dict], float32: Sequence[Target]) -> str:
    """Issue 20's done-when: three consecutive runs (the last three) each meet every float32 line, each run's misses
    named."""
    last = runs[-3:]
    misses = [[t.short for t in float32 if not t.ok(t.value(r))] for r in last]
    per_run = [f"{r.get('date', '?')}: " + (", ".join(m) or "all met") for r, m in zip(last, misses)]
    ok = len(last) == 3 and not any(misses)
    return (f"- done when three consecutive runs each meet every float32 line above (the last {len(last)}: "
            f"{'; '.join(per_run)}) ({met(ok)})")


def bf16_target_lines(runs: Sequence[dict], threads: Sequence[int]) -> list[str]:
    """The opt-in bf16-matmul rows against the float32 targets (not the targets' float32 lines: a separate line), and
    against torch_brain with the same bf16 linears, over the runs that measured them."""
    with_bf16 = [r for r in runs if "bf16_same_precision" in r]
    if not with_bf16:
        return []
    of = f"median of {len(with_bf16)} run{'s' if len(with_bf16) > 1 else ''} with the bf16 rows"
    lines = []
    for t in map(str, threads):
        step = [best_layout(r, "step_ratio", t, bf16=True) for r in with_bf16]
        infer = [best_layout(r, "infer_ratio", t, bf16=True) for r in with_bf16]
        same = [r["bf16_same_precision"][t] for r in with_bf16]
        same_step = [min(v for k, v in s.items() if k.startswith("step")) for s in same]
        same_infer = [min(v for k, v in s.items() if k.startswith("inference")) for s in same]
        lines.append(f"- opt-in bf16 matmuls (`trainer.precision: bf16-matmul`), {t} thread(s): training step "
                     f"{spread(step)}x torch_brain's float32 time ({met(statistics.median(step) <= STEP_TARGET)} "
                     f"against {STEP_TARGET}x, which the issue sets in float32), inference {spread(infer)}x "
                     f"({met(statistics.median(infer) <= INFER_TARGET)} against {INFER_TARGET}x); against torch_brain "
                     f"with the same bf16 linears: step {spread(same_step)}x, inference {spread(same_infer)}x ({of})")
    return lines


def plot_curves(rows: Sequence[Row], variants: Sequence[Variant], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    curves = [(r.name, r.losses) for r in rows] + [(f"spikefm POYO, packed, {v.name}", v.losses) for v in variants[1:]]
    curves.append(("spikefm POYO, packed, float32, other dropout draws", variants[0].reseeded if variants else []))
    for name, losses in curves:
        if losses:
            ax.plot(np.arange(1, len(losses) + 1), losses, label=name, lw=1)
    ax.set(xlabel="training step", ylabel="MSE (hand_vel)", yscale="log", title="POYO training loss, same data")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def versions() -> str:
    try:
        import torch_brain

        tb = torch_brain.__version__
    except Exception:
        tb = "not installed"
    return f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, torch_brain {tb}"


def cpu_info() -> tuple[str, str]:
    """``lscpu``'s model name and the vector / matrix flags that decide fp32 and bf16 speed."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or platform.machine(), "unknown"
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}
    flags = set(fields.get("Flags", "").split())
    shown = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile") if f in flags]
    name = fields.get("Model name", platform.machine())
    if "CPU family" in fields:  # one model name covers several generations (AMD EPYC: Zen 2 / 3 / 4)
        name += f" (family {fields['CPU family']}, model {fields.get('Model', '?')})"
    return name, " ".join(shown) or "none of avx2/avx512/amx"


def results_table(rows: dict[str, Row]) -> list[str]:
    header = ("| implementation | pipeline ms/batch (median, 1 thread) | pipeline M spikes/s | train step ms, "
              "2 threads: median (IQR) | train step ms, 1 thread: median (IQR) | inference ms (2 / 1 threads) "
              "| saved activations MB | params+grads+AdamW MB | real / computed attention keys "
              "| rows through k/v projection per real token |\n|---|---|---|---|---|---|---|---|---|---|")
    return [header, *(r.cells() for r in rows.values())]


def limits_section(hw: dict, rows: dict[str, Row], variants: Sequence[Variant]) -> list[str]:
    """FLOPs per step, achieved GFLOP/s and its ratio to the measured matmul peak; bf16 / compile side by side."""
    bf16_peak = hw.get("peak_bf16")
    lines = [f"- float32 matmul peak (`torch.mm` 1024^3, best of 12): {hw['peak'][1]:.1f} GFLOP/s on 1 thread, "
             f"{hw['peak'][2]:.1f} GFLOP/s on 2 threads"
             + (f"; bf16 (oneDNN): {bf16_peak[1]:.1f} / {bf16_peak[2]:.1f} GFLOP/s. Rows in bf16 matmuls are "
                "set against the bf16 peak." if bf16_peak else "."), "",
             "| implementation | model GFLOP / training step | GFLOP / inference | step GFLOP/s, 1 thread (x peak) "
             "| step GFLOP/s, 2 threads (x peak) | inference GFLOP/s, 1 thread (x peak) |", "|---|---|---|---|---|---|"]
    for name, (train, infer) in hw["flops"].items():
        row = rows[name]
        peak = bf16_peak if BF16_SUFFIX in name and bf16_peak else hw["peak"]
        cells = []
        for flops, ms, threads in ((train, row.step_ms(1), 1), (train, row.step_ms(2), 2), (infer, row.infer_ms.get(1), 1)):
            rate = flops / (ms or float("nan")) / 1e6
            cells.append(f"{rate:.1f} ({rate / peak[threads]:.2f})")
        lines.append(f"| {name} | {train / 1e9:.2f} | {infer / 1e9:.2f} | " + " | ".join(cells) + " |")
    fp32 = variants[0]
    tolerance, floor = CURVE_TOLERANCE, float("nan")
    if fp32.reseeded and fp32.losses:
        floor = curve_within_tolerance(fp32.reseeded, fp32.losses)[1]
        tolerance = max(CURVE_TOLERANCE, floor)
    lines += ["", f"Side by side, spikefm POYO (packed), 1 thread, {len(fp32.steps)} alternating steps after one "
              "untimed first step (the first step includes compilation). A variant keeps the loss curve when every "
              f"20-step mean of its 200-step curve is within {CURVE_TOLERANCE:.0%} of float32's, or within float32's "
              "own distance from itself with other dropout draws, whichever is larger (the curve falls steeply "
              "between steps ~50 and ~100, where a shift of a few steps moves a 20-step mean by more than 20%)"
              + (f"; float32 with other dropout draws: worst 20-step mean {floor:+.1%}, so the tolerance is "
                 f"{tolerance:.1%}" if floor == floor else "") + ":", "",
              "| variant | step ms (median) | x float32 | first step ms | 200-step curve vs float32 | adopted |",
              "|---|---|---|---|---|---|"]
    for v in variants:
        if v is fp32:
            curve, adopted = "reference", "yes (default)"
        elif v.error:
            curve, adopted = f"not run: {v.error}", "no (fails)"
        elif not v.losses:
            curve, adopted = "not run: slower than float32", "no (slower)"
        else:
            worst = curve_within_tolerance(v.losses, fp32.losses)[1]
            ok = worst <= tolerance
            curve = (f"worst 20-step mean {worst:+.1%} ({'within' if ok else 'outside'} {tolerance:.1%}); "
                     f"last 20 steps {np.mean(v.losses[-20:]):.4f} vs {np.mean(fp32.losses[-20:]):.4f}")
            adopted = "yes, opt-in (float32 stays the default)" if ok else "no (curve)"
        lines.append(f"| {v.name} | {v.step_ms:.0f} | {v.step_ms / fp32.step_ms:.2f}x | {v.first_ms:.0f} | {curve} | {adopted} |")
    if not any("compile" in v.name for v in variants):
        lines.append(f"| torch.compile (inductor), not in this run (`--compile`) | {COMPILE_NOTE} | | | | no (slower) |")
    return lines


def distance_to_targets(rows: dict[str, Row], hw: dict) -> list[str]:
    """The step and inference targets as GFLOP/s against this run's matmul peak (1 thread, best spikefm layout)."""
    fp32 = {name: r for name, r in rows.items() if BF16_SUFFIX not in name}
    ours = [r for name, r in fp32.items() if not name.startswith("torch_brain") and name in hw["flops"]
            and r.steps.get(1) and 1 in r.infer_ms]
    theirs = next((r for name, r in fp32.items() if name.startswith("torch_brain")), None)
    if not ours or theirs is None or not theirs.steps.get(1) or 1 not in theirs.infer_ms:
        return []
    best = min(ours, key=lambda r: r.step_ms(1))
    train, infer = hw["flops"][best.name]
    peak = hw["peak"][1]
    parts = []
    for label, flops, target, tb_ms, our_ms in (
            ("step", train, STEP_TARGET, theirs.step_ms(1), best.step_ms(1)),
            ("inference", infer, INFER_TARGET, theirs.infer_ms[1], min(r.infer_ms[1] for r in ours))):
        goal_ms = target * tb_ms
        need, have = flops / goal_ms / 1e6, flops / our_ms / 1e6
        parts.append(f"the {label} target is {goal_ms:.0f} ms ({target:g}x torch_brain's {tb_ms:.0f} ms) for "
                     f"{flops / 1e9:.2f} GFLOP, {need:.0f} GFLOP/s = {need / peak:.2f} of the peak; spikefm runs it "
                     f"in {our_ms:.0f} ms ({have / peak:.2f} of the peak; at the whole peak {flops / peak / 1e6:.0f} ms "
                     f"= {flops / peak / 1e6 / tb_ms:.2f}x)")
    return [f"- This run's CPU, 1 thread, matmul peak {peak:.1f} GFLOP/s: " + "; ".join(parts) + "."]


def streaming_section(streaming: Sequence[dict], duration: float) -> list[str]:
    lines = [f"Tiny presets, random weights, `StreamingDecoder.step` per 50 ms chunk through {duration:g} s of "
             "Poisson spikes at 15 Hz per unit (`possm_latency.make_recording` / `time_stream`; the unified model "
             "calibrated on 8 s first, `unified_latency.build`), 1 thread, 20 warm-up chunks.", "",
             "| model | units | p50 ms | p99 ms | chunks |", "|---|---|---|---|---|"]
    lines += [f"| {s['model']} | {s['units']} | {s['p50']:.3f} | {s['p99']:.3f} | {s['chunks']} |" for s in streaming]
    return lines


def runs_section(runs: Sequence[dict], threads: Sequence[int]) -> list[str]:
    lines = ["| date, commit | load before / after | M spikes/s (padded / packed) | pipeline ratio "
             + "".join(f"| step ratio, {t} thr (padded / packed [/ packed {BF16_SUFFIX}]) | inference ratio, {t} thr "
                       for t in threads) + "|",
             "|---|---|---|---" + "|---|---" * len(threads) + "|"]
    for r in runs:
        cells = [f"{r['date']}, {r['commit']}", " / ".join(f"{x:.2f}" for x in r["load"]),
                 " / ".join(f"{v / 1e6:.1f}" for v in r["spikes_per_s"].values())]
        cells.append(" / ".join(f"{v:.2f}x" for v in r.get("pipeline_ratio", {}).values()) or "-")
        for t in map(str, threads):
            cells.append(" / ".join(f"{v:.2f}x" for v in r.get("step_ratio", {}).get(t, {}).values()) or "-")
            cells.append(f"{best_layout(r, 'infer_ratio', t):.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report(rows: dict[str, Row], args: argparse.Namespace, recording: Recording, png: Path, extra: dict) -> str:
    s = args.setup
    model_name, flags = cpu_info()
    runs, variants = extra["runs"], extra["variants"]
    curves = {name: r.losses for name, r in rows.items() if r.losses}  # padded trains as packed does (tests/nn)
    curves.update({f"spikefm POYO, packed, {v.name}": v.losses for v in variants[1:] if v.losses})
    if variants and variants[0].reseeded:
        curves["spikefm POYO, packed, float32, other dropout draws"] = variants[0].reseeded
    curve_rows = ["| step | " + " | ".join(curves) + " |", "|---|" + "---|" * len(curves)]
    n = max(map(len, curves.values()), default=0)
    for i in sorted({0, 9, 24, 49, 99, 149, n - 1} & set(range(n))):
        curve_rows.append(f"| {i + 1} | " + " | ".join(
            f"{losses[i]:.4f}" if i < len(losses) else "" for losses in curves.values()) + " |")
    return "\n".join([
        "# spikefm POYO vs torch_brain POYO, and against the machine", "",
        f"Generated by `python benchmarks/vs_torch_brain.py {' '.join(args.argv)}` on "
        f"{datetime.date.today().isoformat()} (seed {args.seed}); {len(runs)} run(s) summarized (runs file "
        f"`{args.runs_file.name}`).", "",
        "## Setup", "",
        f"- CPU: {model_name}, {os.cpu_count()} logical cores visible, flags: {flags}. 1-minute load average "
        f"{args.load[0]:.2f} before this invocation's timings and {args.load[1]:.2f} after them; per run in the "
        "table at the end. Implementations alternate step by step in one process; medians reported.",
        f"- {versions()}; {args.allocator}.",
        f"- Model: dim {s.dim}, depth {s.depth}, {s.heads} heads x {s.head_dim} (cross and self), "
        f"{s.latents_per_step} latents every {s.latent_step} s = {int(s.latents_per_step * s.window / s.latent_step)} "
        f"latents per {s.window:g} s window, GEGLU x4, dropout 0.2 / 0.4 (torch_brain defaults), fused AdamW lr {s.lr} (both), "
        f"weight decay {s.weight_decay}, batch {s.batch_size}. MSE on `hand_vel` at its 100 Hz samples (100 queries "
        "per window). spikefm without unit dropout (torch_brain does it as a data transform, not here).",
        f"- Data: synthetic, {recording.duration:.0f} s, {recording.n_units} units cosine-tuned to a 2-D velocity, "
        f"{s.rate_hz:g} Hz mean ({recording.n_spikes:,} spikes, ~{recording.n_spikes / recording.duration:,.0f} per "
        "1 s window), written once to a spikefm store (`write_recording`, default layout: contiguous, memory-mapped "
        "on read) and once to a torch_brain `Data` HDF5 file; random 1 s windows read lazily from each.",
        "- Pipeline: per batch, 16 lazy window reads + tokenize + collate on 1 thread, alternating implementations "
        "batch by batch; spikes/s counts spike tokens (not START/END).",
        f"- Training step: forward + backward + AdamW on pre-collated batches at 2 and 1 torch threads, median of "
        f"{args.steps - args.warmup} steps after {args.warmup} warm-up steps; inference: `inference_mode`, eval, "
        f"median of {args.infer_rounds}. Model FLOPs by `torch.utils.flop_counter.FlopCounterMode` (matmuls and "
        "attention; the CPU fused-attention kernels added to its table).",
        "- Memory: bytes of the distinct storages autograd saves for backward in one training step, and parameters "
        "+ gradients + AdamW moments.",
        "- real / computed attention keys: real input tokens over the keys the encoder's attention kernel receives; "
        "rows through k/v projection per real token: torch_brain projects every padded token, spikefm each distinct "
        "(unit, token type) row once.",
        "", "## Results (this invocation's last run)", "", *results_table(rows),
        "", "## Targets (issue 20)", "", *targets(runs, args.threads, extra["streaming"]),
        "", "## Against the hardware: FLOPs, matmul peak, bf16 and torch.compile", "",
        *limits_section(extra["hw"], rows, variants),
        "", "## Streaming (per 50 ms chunk, 1 thread)", "", *streaming_section(extra["streaming"], args.stream_duration),
        "", "## Where the time goes", "", *distance_to_targets(rows, extra["hw"]), *PROFILE_NOTES,
        "", f"## Loss curves (same windows, same seed per step, {n} steps, 1 thread)", "",
        f"![loss curves]({png.name})", "", *curve_rows,
        "", "## All runs in the runs file (ratios to torch_brain in the same process; lower step ratio is better)", "",
        *runs_section(runs, args.threads), "",
    ])


# ---------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="recording length in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=1, help="repeat the pipeline + model timings N times")
    parser.add_argument("--append", action="store_true", help="keep the runs already in the runs file and "
                        "summarize them with this invocation's (three invocations -> one results file)")
    parser.add_argument("--pipeline-batches", type=int, default=40)
    parser.add_argument("--steps", type=int, default=20, help="training steps per implementation and thread count "
                        "(incl. warm-up)")
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--infer-rounds", type=int, default=12)
    parser.add_argument("--variant-rounds", type=int, default=4, help="alternating steps of float32 / bf16 / compile")
    parser.add_argument("--curve-steps", type=int, default=200)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (its first step compiled for "
                        "~8 min on the 2-core AMD box: outside a 6 min run)")
    parser.add_argument("--stream-duration", type=float, default=10.0, help="seconds of stream per streaming case")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-torch-brain", action="store_true")
    parser.add_argument("--no-bf16-matmul", action="store_true", help="skip the rows whose linears multiply in bf16")
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch threads for the model timings")
    args = parser.parse_args(argv)
    args.argv = list(argv or [])
    args.setup = Setup()
    args.runs_file = args.out.with_suffix(".runs.jsonl")
    return args


def timed_runs(impls: Sequence[Impl], starts: np.ndarray, args: argparse.Namespace) -> tuple[dict[str, Row], list[dict]]:
    """``args.runs`` repetitions of the pipeline and model timings; the last run's rows and every run's summary."""
    summaries = []
    for run in range(args.runs):
        rows = {impl.name: Row(impl.name) for impl in impls}
        load_before = os.getloadavg()[0]
        measure_pipelines(impls, starts[: args.pipeline_batches * args.setup.batch_size], rows, args.setup)
        measure_model(impls, starts, rows, args)
        summaries.append(run_summary(rows, args.threads, (load_before, os.getloadavg()[0])))
        print(f"run {run + 1}/{args.runs}:", json.dumps(summaries[-1]), flush=True)
    return rows, summaries


def main(argv: Sequence[str] | None = None) -> dict[str, Row]:
    args = parse_args(argv)
    args.allocator = steady_allocator()
    setup = args.setup
    recording = build_recording(args.duration, setup, args.seed)
    extra: dict = {"hw": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"ours": Path(tmp) / "ours.h5", "tb": Path(tmp) / "tb.h5"}
        write_recording(recording, paths["ours"])
        if not args.no_torch_brain:
            write_torch_brain_store(recording, paths["tb"])
        impls = make_impls(recording, paths, setup, args.seed, not args.no_torch_brain, bf16=not args.no_bf16_matmul)
        n = max(args.pipeline_batches, args.steps, args.curve_steps) * setup.batch_size
        starts = window_starts(recording.duration, setup, n, args.seed)
        load_before = os.getloadavg()[0]
        rows, summaries = timed_runs(impls, starts, args)
        extra["hw"]["peak"] = {t: matmul_peak(t) for t in (1, 2)}
        extra["hw"]["peak_bf16"] = {t: matmul_peak(t, dtype=torch.bfloat16) for t in (1, 2)}
        torch.set_num_threads(1)
        extra["hw"]["flops"] = {impl.name: step_flops(impl, impl.pipeline(starts[:setup.batch_size])) for impl in impls}
        extra["streaming"] = measure_streaming(args.stream_duration)
        variants = make_variants(recording, paths, setup, args.seed, with_compile=args.compile)
        curve_batches = [variants[0].impl.pipeline(b) for b in starts.reshape(-1, setup.batch_size)[: args.curve_steps]]
        measure_variants(variants, curve_batches[: args.variant_rounds + 1], args.variant_rounds)
        print(*(f"{v.name}: {v.step_ms:.0f} ms (first {v.first_ms:.0f} ms)" for v in variants), sep="\n", flush=True)
        args.load = (load_before, os.getloadavg()[0])
        if args.curve_steps:
            variant_curves(variants, curve_batches, args.seed)
            loss_curves(recording, paths, starts, rows, args)
    extra["variants"] = variants
    extra["runs"] = (read_runs(args.runs_file) if args.append else []) + summaries
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.runs_file.write_text("".join(json.dumps(r) + "\n" for r in extra["runs"]))
    png = args.out.with_suffix(".png")
    plot_curves(list(rows.values()), variants, png)
    args.out.write_text(report(rows, args, recording, png, extra))
    print(f"wrote {args.out}, {png} and {args.runs_file}")
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
