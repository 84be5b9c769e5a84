"""POSSM streaming latency per 50 ms chunk on one CPU thread, written to ``benchmarks/results/possm_latency.md``.

A :class:`spikefm.realtime.StreamingDecoder` steps through a stream of homogeneous Poisson
spikes (default 200 units at 15 Hz, 60 s = 1,200 chunks of 50 ms, ~150 spikes per chunk) and
each ``step`` (input checks + encoder + recurrent core + read-out) is timed with
``time.perf_counter``. Weights are random: latency does not depend on training. Each preset
runs ``--repeats`` passes after a warm-up; the table gives the pass with the lowest median and
the median over all passes (the machine may be shared: the load average is recorded).

For comparison, the offline pass (``POSSM.forward`` on one 1 s window, 20 chunks) is timed
too and divided by its chunks.

With ``--checkpoint`` (a trained POSSM run), the recipe's recordings are also decoded three
ways and scored by velocity R2 on the test trials: offline (``spikefm eval``'s windows), each
test trial streamed chunk by chunk from ``reset()``, and one continuous stream through the
whole session (never reset), scored at the test trials' query times.

Target (spikefm issue 7): under 1 ms per 50 ms chunk for the tiny preset with 200 units.

    python benchmarks/possm_latency.py                 # all presets (a minute or two)
    python benchmarks/possm_latency.py --duration 10   # quick look
    python benchmarks/possm_latency.py --checkpoint runs/possm_tiny/checkpoints/final.ckpt
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path, where benchmarks/tokenize.py would shadow
# the standard library's ``tokenize`` (which dataclasses / inspect import): drop the folder first.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import datetime
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikefm.data.recording import Recording, SpikeTrains, Units
from spikefm.models.possm import POSSM
from spikefm.models.registry import build_config, get_spec
from spikefm.realtime import StreamingDecoder
from spikefm.tokenize.base import collate

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "possm_latency.md"
TARGET_MS = 1.0
CASES = (("tiny", {}), ("tiny (SSM core)", {"core": "ssm"}), ("possm_small", {}), ("possm_gru_9m", {}))


@dataclass
class Result:
    case: str
    n_params: int
    best: np.ndarray  # per-chunk ms of the pass with the lowest median
    all_ms: np.ndarray  # every timed chunk of every pass
    offline_ms_per_chunk: float


def make_recording(n_units: int, rate: float, duration: float, seed: int) -> Recording:
    rng = np.random.default_rng(seed)
    n = rng.poisson(n_units * rate * duration)
    times = np.sort(rng.uniform(0.0, duration, n))
    units = rng.integers(0, n_units, n)
    return Recording(
        spikes=SpikeTrains(times, units), units=Units(ids=np.array([f"u{i}" for i in range(n_units)])),
        session="bench", start=0.0, end=duration,
    )  # fmt: skip


def time_stream(model: POSSM, recording: Recording, *, warmup: int) -> np.ndarray:
    """Milliseconds per ``step`` over the whole recording (after ``warmup`` untimed chunks)."""
    decoder = StreamingDecoder(model, recording.unit_keys(), recording.session)
    chunk = model.config.chunk
    n_chunks = int(round((recording.end - recording.start) / chunk))
    edges = np.searchsorted(recording.spikes.times, np.arange(n_chunks + 1) * chunk)
    times, units = recording.spikes.times, recording.spikes.units
    for k in range(warmup):
        decoder.step(times[edges[k] : edges[k + 1]], units[edges[k] : edges[k + 1]], (k + 1) * chunk)
    decoder.reset()
    out = np.empty(n_chunks)
    for k in range(n_chunks):
        lo, hi = edges[k], edges[k + 1]
        start = time.perf_counter()
        decoder.step(times[lo:hi], units[lo:hi], (k + 1) * chunk)
        out[k] = (time.perf_counter() - start) * 1e3
    return out


def time_offline(model: POSSM, recording: Recording, repeats: int = 20) -> float:
    """Milliseconds per chunk of the offline pass on a 1 s window (batch of one)."""
    tokenizer = get_spec("possm").make_tokenizer(model.config, query="rate", behavior_keys=())
    batch = collate([tokenizer(recording.window(1.0, 2.0))], pack=True)
    batch.query_timestamps = torch.arange(0, 1.0, 1 / model.config.query_rate_hz, dtype=torch.float32)[None]
    batch.query_mask = torch.ones_like(batch.query_timestamps, dtype=torch.bool)
    with torch.inference_mode():
        for _ in range(3):
            model(batch)
        start = time.perf_counter()
        for _ in range(repeats):
            model(batch)
    return (time.perf_counter() - start) / repeats * 1e3 / round(1.0 / model.config.chunk)


def run_case(name: str, overrides: dict, recording: Recording, args: argparse.Namespace) -> Result:
    preset = name.split(" ")[0]
    torch.manual_seed(args.seed)
    config = build_config("possm", preset, **overrides)
    model = POSSM(config, unit_keys=recording.unit_keys(), sessions=[recording.session], behavior_dim=2).eval()
    passes = [time_stream(model, recording, warmup=args.warmup) for _ in range(args.repeats)]
    best = min(passes, key=np.median)
    n_params = sum(p.numel() for p in model.parameters())
    return Result(name, n_params, best, np.concatenate(passes), time_offline(model, recording))


def stream_scores(checkpoint: Path) -> tuple[str, list[str]]:
    """The run's recipe name and markdown rows: per session, R2 offline / streamed per test trial / one
    continuous stream."""
    from spikefm.eval.evaluate import predict
    from spikefm.eval.metrics import decoding_r2
    from spikefm.train.data import load_recordings
    from spikefm.train.fit import load_checkpoint

    module, config = load_checkpoint(checkpoint)
    model, window = module.model.eval(), config.data.window
    tokenizer = get_spec("possm").make_tokenizer(model.config, **config.tokenizer)
    recordings, _ = load_recordings(config.data, seed=config.trainer.seed)
    rows = []
    for rec in recordings:
        p = predict(model, tokenizer, rec, split="test", window=window, pack=True)
        valid = p.query_mask & np.all(np.isfinite(p.behavior_true), axis=-1)  # at the queries, as streamed ones are
        offline = decoding_r2(p.behavior[valid], p.behavior_true[valid])
        starts = rec.trials.start[rec.trials.columns["split"].astype(str) == "test"]
        per_trial = [_stream(model, rec, t0, t0 + window) for t0 in starts]
        continuous = _stream(model, rec, rec.start, rec.end)
        queries = continuous[0]
        in_test = np.zeros(queries.shape, bool)
        for t0 in starts:
            in_test |= (queries >= t0 - 1e-9) & (queries < t0 + window - 1e-9)
        scores = [
            decoding_r2(np.concatenate([p for _, p, _ in per_trial]), np.concatenate([t for _, _, t in per_trial])),
            decoding_r2(continuous[1][in_test], continuous[2][in_test]),
        ]
        rows.append(f"| {rec.session} | {offline:.3f} | {scores[0]:.3f} | {scores[1]:.3f} |")
    return config.name, rows


def _stream(model: POSSM, rec: Recording, t0: float, t1: float) -> tuple[np.ndarray, ...]:
    """Query times, decoded and true behaviour of a fresh stream over [t0, t1) in 50 ms chunks."""
    decoder = StreamingDecoder(model, rec.unit_keys(), rec.session)
    chunk, behavior = model.config.chunk, rec.behavior[model.config.behavior_key]
    n_chunks = int(np.floor((t1 - t0) / chunk + 1e-6))
    edges = np.searchsorted(rec.spikes.times, t0 + np.arange(n_chunks + 1) * chunk)
    times, decoded = [], []
    for k in range(n_chunks):
        lo, hi = edges[k], edges[k + 1]
        decoded.append(decoder.step(rec.spikes.times[lo:hi], rec.spikes.units[lo:hi], t0 + (k + 1) * chunk).numpy())
        times.append(decoder.last_query_times)
    queries = np.concatenate(times)
    true = np.stack([np.interp(queries, behavior.timestamps, column) for column in behavior.values.T], axis=-1)
    return queries, np.concatenate(decoded), true


def report(results: list[Result], recording: Recording, args: argparse.Namespace, load: tuple) -> str:
    per_chunk = len(recording.spikes) / (recording.end / 0.05)
    lines = [
        "# POSSM streaming latency", "",
        f"Generated by `python benchmarks/possm_latency.py` on {datetime.date.today().isoformat()}.", "",
        "## Setup", "",
        f"- CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores visible, shared with "
        f"other jobs: load average {load[0]:.1f} before / {load[1]:.1f} after); `torch.set_num_threads(1)`.",
        f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}.",
        f"- Stream: {args.units} units x {args.rate:g} Hz homogeneous Poisson, {args.duration:g} s = "
        f"{int(round(args.duration / 0.05))} chunks of 50 ms, {per_chunk:.0f} spikes per chunk on average; "
        f"random weights (seed {args.seed}); {args.repeats} passes after {args.warmup} warm-up chunks.",
        "- Timed: `StreamingDecoder.step` (input checks, encoder cross-attention, core step, decoder, read-out "
        "of the chunk's 5 queries at 100 Hz). Offline: `POSSM.forward` on one 1 s window / 20 chunks.", "",
        "## Results (ms per 50 ms chunk)", "",
        "| preset | params | median | p90 | p99 | min | median, all passes | offline forward / chunk | "
        f"< {TARGET_MS:g} ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for r in results:
        q = np.percentile(r.best, [50, 90, 99])
        lines.append(
            f"| {r.case} | {r.n_params / 1e6:.2f}M | {q[0]:.3f} | {q[1]:.3f} | {q[2]:.3f} | {r.best.min():.3f} | "
            f"{np.median(r.all_ms):.3f} | {r.offline_ms_per_chunk:.3f} | {'yes' if q[0] < TARGET_MS else 'no'} |"
        )
    lines += [
        "", "Parameters include the 200 unit embeddings. Medians are the honest number; the tail (p90 / p99) "
        "on this shared 2-core machine is other processes pre-empting the single thread, not the decoder.", "",
    ]  # fmt: skip
    if args.checkpoint is not None:
        name, rows = stream_scores(args.checkpoint)
        lines += [
            f"## Streaming a trained model (the `{name}` run, `{args.checkpoint.name}`)", "",
            "Velocity R2 on each session's test trials (first second of each trial, 100 Hz queries).", "",
            "| session | offline forward | streamed, reset per trial | one continuous stream |", "|---|---|---|---|",
            *rows, "",
        ]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--rate", type=float, default=15.0, help="Hz per unit")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of stream")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=40, help="untimed chunks before each pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--checkpoint", type=Path, default=None, help="a trained POSSM run's final.ckpt")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    recording = make_recording(args.units, args.rate, args.duration, args.seed)
    before = os.getloadavg()[0]
    results = []
    for name, overrides in CASES:
        results.append(run_case(name, overrides, recording, args))
        print(f"{name}: median {np.median(results[-1].best):.3f} ms per chunk")
    text = report(results, recording, args, (before, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    main()
