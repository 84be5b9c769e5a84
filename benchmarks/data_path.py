"""spikefm's POYO data path alone vs torch_brain 0.2.1's, written to ``benchmarks/results/data_path.md``.

The pipeline is the one ``benchmarks/vs_torch_brain.py`` times (same recording, window starts,
tokenizer, collate and torch_brain pipeline, imported from it): per batch, 16 random 1 s windows
read lazily from a store, tokenized and collated, on one thread. This script times only that
part, so repeated runs are cheap; it adds the chunked layout (an lzf store read through h5py,
with HDF5's default chunk cache and with one holding the whole store) and spikefm's previous
read path (that store with every window validated: ``open_recording(..., check="window")``), so
layouts and the read path's before / after are measured in the same process. Implementations alternate batch by batch; each run reports spikes/s over all its
batches; the table gives the median (and range) over ``--runs`` runs, each with the load.

Targets (spikefm issue 20): >= 20M spikes/s on one thread and >= 5x torch_brain's spikes/s,
median of >= 3 runs.

    python benchmarks/data_path.py                  # 3 runs of 60 batches (~1 min)
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path and its tokenize.py would shadow the standard
# library's (which numpy imports): drop the folder now, append it below to import vs_torch_brain.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import datetime
import statistics
import time
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.append(str(Path(__file__).resolve().parent))  # appended: this folder's tokenize.py must not shadow the stdlib

import vs_torch_brain as bench  # noqa: E402

from spikefm.data.store import LazyRecording, open_recording, write_recording  # noqa: E402
from spikefm.tokenize import collate  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "data_path.md"
SPIKES_TARGET = 20e6
RATIO_TARGET = 5.0
TORCH_BRAIN = "torch_brain 0.2.1 POYO (pad8)"


class ChunkCached(LazyRecording):
    """A lazy store whose HDF5 chunk cache holds the whole benchmark store (64 MiB): the chunked
    layout's best case, every window a cache hit after the first pass."""

    _h5py_options = {"rdcc_nbytes": 64 << 20, "rdcc_nslots": 100_003}


class OtherRead(bench.OursPipeline):
    """The padded pipeline reading another layout or with another check (``store`` replaced)."""

    def __init__(self, path: Path, setup: bench.Setup, store: LazyRecording) -> None:
        super().__init__(path, setup, pack=False)
        self.store = store


def build(tmp: Path, recording, setup: bench.Setup, seed: int) -> dict[str, object]:
    """Pipelines by name: spikefm padded / packed, the chunked layout's reads, the old read path, torch_brain."""
    paths = {"ours": tmp / "ours.h5", "lzf": tmp / "lzf.h5", "tb": tmp / "tb.h5"}
    write_recording(recording, paths["ours"])
    write_recording(recording, paths["lzf"], compression="lzf")
    bench.write_torch_brain_store(recording, paths["tb"])
    model = bench.build_torch_brain(recording, setup, seed)
    lzf = paths["lzf"]
    return {
        "spikefm, padded": bench.OursPipeline(paths["ours"], setup, pack=False),
        "spikefm, packed": bench.OursPipeline(paths["ours"], setup, pack=True),
        "spikefm, lzf store (h5py reads, default chunk cache), checked once, padded": OtherRead(
            lzf, setup, open_recording(lzf)),
        "spikefm, lzf store, 64 MiB chunk cache, checked once, padded": OtherRead(lzf, setup, ChunkCached(lzf)),
        "spikefm, lzf store checked per window (previous read path), padded": OtherRead(
            lzf, setup, open_recording(lzf, check="window")),
        TORCH_BRAIN: bench.TorchBrainPipeline(paths["tb"], model, setup),
    }  # fmt: skip


def spike_tokens(batch) -> int:
    """Real spike tokens of a batch (START / END excluded), either library's batch type."""
    if isinstance(batch, dict):
        return int(((batch["input_token_type"] == 0) & batch["input_mask"]).sum())
    return int(((batch.token_type == 0) & batch.mask).sum())


def one_run(pipelines: dict[str, object], batches: np.ndarray) -> dict[str, float]:
    """Spikes/s of each pipeline over ``batches``, alternating pipelines batch by batch."""
    impls = [SimpleNamespace(name=name, pipeline=pipeline) for name, pipeline in pipelines.items()]
    spikes = {name: 0 for name in pipelines}

    def run(impl, r: int) -> None:
        spikes[impl.name] += spike_tokens(impl.pipeline(batches[r]))

    times = bench.alternate(impls, len(batches), run)
    return {name: spikes[name] / sum(times[name]) for name in pipelines}


def stages(pipeline: bench.OursPipeline, batches: np.ndarray, passes: int = 5) -> dict[str, float]:
    """Microseconds per batch of the lazy reads, the tokenizer and collate, each batch's stage
    timed ``passes`` times and its fastest pass kept (a pass that another job preempted drops
    out), summed over the batches; plus the spike tokens, for the implied spikes/s."""
    window = pipeline.window
    stage = {
        "read": lambda b: [pipeline.store.window(t, t + window) for t in b],
        "tokenize": lambda windows: [pipeline.tokenizer(w) for w in windows],
        "collate": lambda samples: collate(samples, pack=pipeline.pack),
    }
    total = dict.fromkeys(stage, 0.0)
    spikes = 0
    for starts in batches:
        value = starts
        for name, fn in stage.items():
            total[name] += min(_seconds(fn, value) for _ in range(passes))
            value = fn(value)
        spikes += spike_tokens(value)
    return {name: 1e6 * seconds / len(batches) for name, seconds in total.items()} | {"spikes": spikes / len(batches)}


def _seconds(fn, arg) -> float:
    t0 = time.perf_counter()
    fn(arg)
    return time.perf_counter() - t0


def report(runs: list[dict[str, float]], loads: list[tuple[float, float]], args: argparse.Namespace, recording,
           split: dict[str, float]) -> str:
    names = list(runs[0])
    batch = bench.Setup().batch_size
    stage_sum = split["read"] + split["tokenize"] + split["collate"]
    median = {n: statistics.median(r[n] for r in runs) for n in names}
    ratio = {n: statistics.median(r[n] / r[TORCH_BRAIN] for r in runs) for n in names}
    cpu, flags = bench.cpu_info()
    lines = [
        "# spikefm POYO data path vs torch_brain", "",
        f"Generated by `python benchmarks/data_path.py --runs {args.runs} --batches {args.batches}` on "
        f"{datetime.date.today()} (seed {args.seed}).", "",
        "## Setup", "",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores visible, flags: {flags}; the load is under Setup's last line; "
        "`torch.set_num_threads(1)`, one process.",
        f"- {bench.versions()}.",
        f"- Data: `vs_torch_brain.py`'s synthetic recording, {recording.duration:.0f} s, {recording.n_units} units, "
        f"{recording.n_spikes:,} spikes (~{recording.n_spikes / recording.duration:,.0f} per 1 s window), 100 Hz "
        "`hand_vel`; spikefm stores written with `write_recording` (default: contiguous, memory-mapped on read; "
        "and `compression=\"lzf\"` for the chunked-layout rows), torch_brain's `Data.to_hdf5`.",
        f"- Per batch: 16 random 1 s windows read lazily, tokenized (POYO spike tokens + START / END, `hand_vel` "
        f"queries) and collated; {args.batches} batches per run, pipelines alternating batch by batch; "
        "spikes/s counts spike tokens (not START / END) over each run's total time.",
        "- Load: 1-minute load average before / after each run: "
        + ", ".join(f"{a:.2f} / {b:.2f}" for a, b in loads) + ".", "",
        "## Results", "",
        "| pipeline | M spikes/s, median of runs (range) | x torch_brain, median of runs (range) |",
        "|---|---|---|",
    ]  # fmt: skip
    for n in names:
        values = [r[n] / 1e6 for r in runs]
        ratios = [r[n] / r[TORCH_BRAIN] for r in runs]
        lines.append(
            f"| {n} | {median[n] / 1e6:.2f} ({min(values):.2f}-{max(values):.2f}) "
            f"| {ratio[n]:.2f} ({min(ratios):.2f}-{max(ratios):.2f}) |"
        )
    lines += [
        "", "## Where the time goes (spikefm, padded)", "",
        "Each stage of each batch of the first run timed 5 times, its fastest pass kept (drops passes that "
        "other jobs preempted), in the same process after the runs. This is a diagnostic of the code's own cost, "
        "not the target's measure (that is the table above).", "",
        f"- lazy window reads (memory map, one copy per array, window objects): {split['read']:.0f} us per batch "
        f"= {split['read'] / batch:.1f} us per window",
        f"- tokenize (START / END + spikes, `hand_vel` queries and targets): {split['tokenize']:.0f} us per batch "
        f"= {split['tokenize'] / batch:.1f} us per window",
        f"- collate (padded): {split['collate']:.0f} us per batch = {split['collate'] / batch:.1f} us per window",
        f"- sum: {stage_sum:.0f} us per batch of {split['spikes']:,.0f} spike tokens: "
        f"{split['spikes'] / stage_sum:.1f}M spikes/s without preemption",
        f"- 1-minute load average after timing the stages: {split['load']:.2f}",
    ]  # fmt: skip
    lines += ["", "## Targets (median of runs)", ""]
    for n in ("spikefm, padded", "spikefm, packed"):
        met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
        speed = f"{median[n] / 1e6:.1f}M ({met(median[n] >= SPIKES_TARGET)})"
        lines.append(f"- >= 20M spikes/s on one thread ({n}): {speed}")
        lines.append(f"- >= 5x torch_brain's spikes/s ({n}): {ratio[n]:.2f}x ({met(ratio[n] >= RATIO_TARGET)})")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--batches", type=int, default=60, help="batches per pipeline per run")
    parser.add_argument("--duration", type=float, default=600.0, help="recording length in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict[str, float]]:
    args = parse_args(argv)
    torch.set_num_threads(1)
    setup = bench.Setup()
    recording = bench.build_recording(args.duration, setup, args.seed)
    starts = bench.window_starts(recording.duration, setup, args.runs * args.batches * setup.batch_size, args.seed)
    batches = starts.reshape(args.runs, args.batches, setup.batch_size)
    runs, loads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        pipelines = build(Path(tmp), recording, setup, args.seed)
        one_run(pipelines, batches[0][:4])  # warm-up: opens files, checks the stores, fills caches
        for run_batches in batches:
            before = os.getloadavg()[0]
            runs.append(one_run(pipelines, run_batches))
            loads.append((before, os.getloadavg()[0]))
            print(", ".join(f"{n}: {v / 1e6:.2f}M" for n, v in runs[-1].items()), flush=True)
        split = stages(pipelines["spikefm, padded"], batches[0])
        split["load"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(runs, loads, args, recording, split))
    print(f"wrote {args.out}")
    return runs


if __name__ == "__main__":
    main(sys.argv[1:])
