"""Tokenizer + collate throughput on one CPU thread, written to ``benchmarks/results/tokenize.md``.

Data: a synthetic recording built directly with numpy (homogeneous Poisson spikes; default
1 h, 200 units, 15 Hz, i.e. ~10.8M spikes, plus a 100 Hz ``hand_vel``), cut into back-to-back
windows. Each case streams the windows in batches the way a loader worker does: tokenize a
batch of windows, then collate it. Timings are the best of ``--repeats`` passes (the median is
reported too: the machine may be shared).

Targets (spikefm issue 3): per-spike tokenize+collate >= 5M spikes/s; binned >= 2,000 windows/s.

If ``torch_brain`` (0.2.1) imports, its POYO ``tokenize`` + ``collate`` run on the same spikes
as ``temporaldata``-style ``Data`` objects, both on pre-sliced windows and including the slicing.

    python benchmarks/tokenize.py                   # full run (a few minutes)
    python benchmarks/tokenize.py --duration 60     # quick look
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path and this file would shadow the standard
# library's ``tokenize`` (which dataclasses / inspect import): drop the folder first.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import datetime
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spikefm.data.recording import Recording, SpikeTrains, TimeSeries, Units
from spikefm.tokenize import (
    BinnedConfig,
    BinnedTokenizer,
    EventConfig,
    EventTokenizer,
    NeuronConfig,
    NeuronTokenizer,
    PatchConfig,
    PatchTokenizer,
    SpikeConfig,
    SpikeTokenizer,
    collate,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "tokenize.md"
SPIKE_TARGET = 5e6  # spikes / s, per-spike tokenize + collate
BINNED_TARGET = 2000.0  # windows / s, binned tokenize + collate


TORCH_BRAIN_NOTES = [
    "- Installed with `pip install --no-deps torch-brain==0.2.1` (the wheel bundles the former temporaldata "
    "`Data` classes); `torch_brain.models` imports `ray` at import time, so `pip install ray` too (it pulled "
    "only `msgpack`; torch stayed the same).",
    "- Same spikes as `Data(spikes=IrregularTimeSeries(...), units=ArrayDict(id=...), session=Data(id=...))`; "
    "a small POYO (dim 64, depth 1) only to own the unit / session vocabularies that `tokenize` reads.",
    "- POYO.tokenize also builds latent-token indices and maps unit ids to vocabulary rows; spikefm leaves "
    "latents to the model and maps keys once per batch, so the work is close to but not exactly equal.",
]


@dataclass
class Result:
    case: str
    windows: int
    spikes: int
    tokens: int
    batches: int
    best_s: float
    median_s: float
    tokenize_s: float  # best pass's share spent tokenizing (or slicing + tokenizing)
    collate_s: float

    def row(self) -> str:
        return (
            f"| {self.case} | {self.windows / self.best_s:,.0f} | {self.windows / self.median_s:,.0f} | "
            f"{self.spikes / self.best_s / 1e6:.2f} | {self.tokens / self.best_s / 1e6:.2f} | "
            f"{self.tokens / self.windows:,.0f} | {1e6 * self.tokenize_s / self.windows:.1f} | "
            f"{1e3 * self.collate_s / self.batches:.2f} |"
        )


# ---------------------------------------------------------------------------- data
def build_recording(duration: float, n_units: int, rate_hz: float, seed: int = 0) -> Recording:
    """Homogeneous Poisson spikes for ``n_units`` units over ``[0, duration)`` and a 100 Hz hand_vel."""
    rng = np.random.default_rng(seed)
    counts = rng.poisson(rate_hz * duration, size=n_units)
    times = rng.uniform(0.0, duration, size=int(counts.sum()))
    units = np.repeat(np.arange(n_units, dtype=np.int64), counts)
    order = np.argsort(times, kind="stable")
    stamps = np.arange(0.0, duration, 0.01)
    velocity = np.stack([np.sin(2 * np.pi * 0.5 * stamps), np.cos(2 * np.pi * 0.3 * stamps)], axis=1)
    return Recording(
        spikes=SpikeTrains(times=times[order], units=units[order]),
        units=Units(ids=np.array([f"unit{i:03d}" for i in range(n_units)])),
        session="bench",
        behavior={"hand_vel": TimeSeries(stamps, velocity, ("x", "y"))},
        start=0.0,
        end=duration,
    )


def window_bounds(duration: float, length: float, step: float) -> np.ndarray:
    starts = np.arange(0.0, duration - length + 1e-9, step)
    return np.stack([starts, starts + length], axis=1)


# ---------------------------------------------------------------------------- timing
def run_case(
    case: str,
    items: Sequence,
    make_sample: Callable,
    collate_fn: Callable,
    batch_size: int,
    repeats: int,
    count: Callable,
) -> Result:
    """Time ``make_sample`` over ``items`` in batches, then ``collate_fn`` per batch."""
    for lo in range(0, min(len(items), 4 * batch_size), batch_size):  # warm-up, untimed
        collate_fn([make_sample(item) for item in items[lo : lo + batch_size]])
    passes = []
    for _ in range(repeats):
        tokenize_s = collate_s = 0.0
        tokens = 0
        for lo in range(0, len(items), batch_size):
            t0 = time.perf_counter()
            samples = [make_sample(item) for item in items[lo : lo + batch_size]]
            t1 = time.perf_counter()
            batch = collate_fn(samples)
            t2 = time.perf_counter()
            tokenize_s, collate_s = tokenize_s + (t1 - t0), collate_s + (t2 - t1)
            tokens += count(samples, batch)
        passes.append((tokenize_s + collate_s, tokenize_s, collate_s, tokens))
    best = min(passes)
    return Result(
        case=case,
        windows=len(items),
        spikes=0,
        tokens=best[3],
        batches=-(-len(items) // batch_size),
        best_s=best[0],
        median_s=statistics.median(p[0] for p in passes),
        tokenize_s=best[1],
        collate_s=best[2],
    )


def spikefm_cases(recording: Recording, args: argparse.Namespace) -> list[Result]:
    bounds = window_bounds(recording.duration, args.window, args.window)
    t0 = time.perf_counter()
    windows = [recording.window(a, b) for a, b in bounds]
    slice_s = time.perf_counter() - t0
    print(f"sliced {len(windows)} windows in {slice_s:.2f} s ({len(windows) / slice_s:,.0f} windows/s)")
    n_spikes = sum(w.recording.n_spikes for w in windows)
    spike = SpikeTokenizer(SpikeConfig(query="none"))
    cases: list[tuple[str, Sequence, Callable, bool]] = [
        ("spike (POYO), padded", windows, spike, False),
        ("spike (POYO), packed", windows, spike, True),
        ("spike (POYO) + 100 Hz hand_vel queries, padded",
         windows, SpikeTokenizer(SpikeConfig(query="rate", behavior_keys=("hand_vel",))), False),
        ("spike (POYO), incl. slicing, padded", bounds, lambda b: spike(recording.window(*b)), False),
        ("binned 20 ms (NDT1), padded", windows, BinnedTokenizer(BinnedConfig(query="none")), False),
        ("binned 20 ms + bin-centre hand_vel queries", windows,
         BinnedTokenizer(BinnedConfig(behavior_keys=("hand_vel",))), False),
        ("patch 32 units x 1 bin (NDT2), padded", windows, PatchTokenizer(PatchConfig(query="none")), False),
        ("neuron-as-token 20 ms (STNDT), padded", windows, NeuronTokenizer(NeuronConfig(query="none")), False),
    ]
    results = []
    for name, items, tokenizer, pack in cases:
        result = run_case(name, items, tokenizer, lambda s, p=pack: collate(s, pack=p),
                          args.batch_size, args.repeats, lambda s, b: sum(len(x) for x in s))
        result.spikes = n_spikes
        results.append(result)
        print(result.row())
    results.append(event_case(recording, args))
    print(results[-1].row())
    return results


def event_case(recording: Recording, args: argparse.Namespace) -> Result:
    """Neuroformer windows: 50 ms past + 50 ms current, stepping by 50 ms (first ``--event-seconds``)."""
    config = EventConfig(query="none")
    span = min(recording.duration, args.event_seconds)
    bounds = window_bounds(span, config.past_window + config.current_window, config.current_window)
    windows = [recording.window(a, b) for a, b in bounds]
    result = run_case(f"event pairs (Neuroformer), 100 ms windows, first {span:.0f} s", windows,
                      EventTokenizer(config), collate, args.batch_size, args.repeats,
                      lambda s, b: sum(len(x) for x in s))
    result.spikes = sum(w.recording.n_spikes for w in windows)
    return result


# ---------------------------------------------------------------------------- torch_brain
def torch_brain_cases(recording: Recording, args: argparse.Namespace) -> tuple[list[Result], str]:
    """POYO tokenize + collate from torch_brain on the same spikes, or a note why not."""
    try:
        import torch_brain
        from torch_brain.batching import collate as tb_collate
        from torch_brain.data import ArrayDict, Data, Interval, IrregularTimeSeries
        from torch_brain.models import POYO
    except Exception as error:  # any import failure means: not comparable here
        note = f"torch_brain not measured: import failed ({type(error).__name__}: {error})"
        print(note)
        return [], note
    keys = np.array(recording.unit_keys())
    data = Data(
        spikes=IrregularTimeSeries(
            timestamps=recording.spikes.times,
            unit_index=recording.spikes.units,
            domain=Interval(recording.start, recording.end),
        ),
        units=ArrayDict(id=keys),
        session=Data(id=recording.session),
        domain=Interval(recording.start, recording.end),
    )
    model = POYO(sequence_length=float(args.window), latent_step=0.125, num_latents_per_step=16,
                 dim_out=2, dim=64, depth=1, dim_head=32, cross_heads=1, self_heads=2)
    model.unit_emb.initialize_vocab(keys.tolist())
    model.session_emb.initialize_vocab([recording.session])
    bounds = window_bounds(recording.duration, args.window, args.window)
    sliced = [data.slice(a, b) for a, b in bounds]
    n_spikes = sum(len(d.spikes) for d in sliced)
    count = lambda s, b: int(b["input_mask"].sum())  # noqa: E731
    results = [
        run_case("torch_brain 0.2.1 POYO.tokenize + collate (pad8)", sliced, model.tokenize, tb_collate,
                 args.batch_size, args.repeats, count),
        run_case("torch_brain 0.2.1 POYO, incl. Data.slice", bounds, lambda b: model.tokenize(data.slice(*b)),
                 tb_collate, args.batch_size, args.repeats, count),
    ]
    for result in results:
        result.spikes = n_spikes
        print(result.row())
    return results, f"torch_brain {torch_brain.__version__} measured (import OK, no different torch pulled)"


# ---------------------------------------------------------------------------- report
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def report(results: list[Result], tb_note: str, recording: Recording, args: argparse.Namespace) -> str:
    spike = next(r for r in results if r.case.startswith("spike (POYO), padded"))
    binned = next(r for r in results if r.case.startswith("binned 20 ms (NDT1)"))
    spike_rate, binned_rate = spike.spikes / spike.best_s, binned.windows / binned.best_s
    try:
        import torch_brain
        tb_version = torch_brain.__version__
    except Exception:
        tb_version = "not installed"
    header = (
        "| case | windows/s (best) | windows/s (median) | spikes/s (M) | tokens/s (M) | tokens/window "
        "| tokenize us/window | collate ms/batch |\n|---|---|---|---|---|---|---|---|"
    )
    return "\n".join([
        "# Tokenizer benchmark",
        "",
        f"Generated by `python benchmarks/tokenize.py` on {datetime.date.today().isoformat()}.",
        "",
        "## Setup",
        "",
        f"- CPU: {cpu_model()} ({_ncpu()} logical cores visible, shared with other jobs); "
        f"`torch.set_num_threads({torch.get_num_threads()})`, one process, no DataLoader workers.",
        f"- Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
        f"torch_brain {tb_version}.",
        f"- Data: synthetic recording built with numpy, {recording.duration:.0f} s, {recording.n_units} units, "
        f"{args.rate:g} Hz homogeneous Poisson ({recording.n_spikes:,} spikes), 100 Hz `hand_vel`.",
        f"- Windows of {args.window:g} s back to back (pre-sliced `Window`s unless the case says "
        f"'incl. slicing'), batches of {args.batch_size}; best and median of {args.repeats} passes.",
        "- spikes/s counts the spikes inside the windows (per-spike tokens add 2 START/END tokens per unit); "
        "event-pair windows overlap by 50 ms, so there each spike is counted twice.",
        "",
        "## Results",
        "",
        header,
        *(r.row() for r in results),
        "",
        "## Targets",
        "",
        f"- per-spike tokenize + collate >= 5M spikes/s: {spike_rate / 1e6:.1f}M spikes/s "
        f"({'met' if spike_rate >= SPIKE_TARGET else 'NOT met'})",
        f"- binned tokenize + collate >= 2,000 windows/s: {binned_rate:,.0f} windows/s "
        f"({'met' if binned_rate >= BINNED_TARGET else 'NOT met'})",
        "",
        "## torch_brain",
        "",
        f"- {tb_note}.",
        *(TORCH_BRAIN_NOTES if tb_version != "not installed" else [
            "- To compare: `pip install --no-deps torch-brain==0.2.1 ray` (ray is imported by `torch_brain.models`; "
            "it pulls only `msgpack`, not torch).",
        ]),
        "",
    ])


def _ncpu() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="recording length in seconds")
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--rate", type=float, default=15.0, help="firing rate per unit in Hz")
    parser.add_argument("--window", type=float, default=1.0, help="window length in seconds")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--event-seconds", type=float, default=600.0,
                        help="seconds of recording for the event-pair case (20 windows per second)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-torch-brain", action="store_true", help="skip the torch_brain comparison")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    recording = build_recording(args.duration, args.units, args.rate)
    print(f"built {recording!r} in {time.perf_counter() - t0:.1f} s")
    results = spikefm_cases(recording, args)
    if args.no_torch_brain:
        tb_results, tb_note = [], "torch_brain not measured (--no-torch-brain)"
    else:
        tb_results, tb_note = torch_brain_cases(recording, args)
    text = report(results + tb_results, tb_note, recording, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return results + tb_results


if __name__ == "__main__":
    main(sys.argv[1:])
