"""Where spikefm POYO's training step and inference spend their time, against issue 20's targets and the matmul peak.

``benchmarks/vs_torch_brain.py`` gives the ratios to torch_brain; this script splits spikefm's own time (packed
layout, the same configuration, one torch thread) into three kinds of work and sets each against the budget the
targets leave:

* **linears**: ``mm`` / ``addmm`` / ``bmm`` (the projections and feed-forwards), forward and backward;
* **attention**: the fused SDPA kernels (the encoder's per-sample cross-attention dominates), forward and backward;
* **the rest**: norms, GELU, dropout, rotations, row gathers and scatters, copies, AdamW, dispatch.

Each kind's share of the step comes from ``torch.profiler`` (self CPU time), scaled to the step's unprofiled median;
its FLOPs from ``FlopCounterMode`` (the same counting as the main benchmark). With the matmul peak measured in the
same process, the report says how fast each kind runs (GFLOP/s and x peak) and what the target leaves for the rest
once the linears and the attention run at their measured rates, or at the peak.

torch_brain's step and inference are timed in the same process, alternating with spikefm's, for the target itself
(0.33x its step, 0.2x its inference, issue 20). Without torch_brain (``--no-torch-brain``) the report gives the
split alone.

    python benchmarks/step_budget.py                                  # ~2 min on the 2-core box
    python benchmarks/step_budget.py --out benchmarks/results/step_budget_zen4.md
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize when run as a script.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import datetime  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Iterable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))  # appended: this folder's tokenize.py must not shadow the stdlib

import vs_torch_brain as bench  # noqa: E402

from spikefm.data.store import write_recording  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "step_budget.md"
KINDS = ("linears", "attention", "the rest")
LINEAR_OPS = ("mm", "addmm", "bmm", "baddbmm")


def kind_of(op: str) -> str:
    """The kind of work of a profiler key (``aten::addmm``) or a FLOP-counter key (``aten.addmm``)."""
    if "scaled_dot_product" in op:
        return "attention"
    name = op.replace("::", ".").split(".")[-1]
    return "linears" if name in LINEAR_OPS else "the rest"


def split_by_kind(times: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Sum ``(op, seconds)`` pairs by :func:`kind_of`; every kind present (0 when absent)."""
    out = dict.fromkeys(KINDS, 0.0)
    for op, seconds in times:
        out[kind_of(op)] += seconds
    return out


@dataclass
class Split:
    """One workload (a training step or an inference pass): its median time and its split by kind."""

    label: str
    ms: float  # unprofiled median
    share: dict[str, float]  # fraction of the profiled self CPU time per kind
    flops: dict[str, float]  # FLOPs per kind

    def kind_ms(self, kind: str) -> float:
        return self.ms * self.share[kind]


def budget_lines(split: Split, target_ms: float | None, peak: float) -> list[str]:
    """What the target leaves for the rest: after the linears and attention at their measured rates, and at the peak.

    Args:
        split: the workload's measured split.
        target_ms: the target time (0.33x / 0.2x torch_brain's), or None without torch_brain.
        peak: the 1-thread float32 matmul rate, GFLOP/s.
    """
    if target_ms is None:
        return []
    measured = split.kind_ms("linears") + split.kind_ms("attention")
    at_peak = (split.flops["linears"] + split.flops["attention"]) / peak / 1e6
    return [
        f"- {split.label}: target {target_ms:.0f} ms, measured {split.ms:.0f} ms ({split.ms / target_ms:.2f}x the "
        f"target). With the linears and the attention at their measured rates ({measured:.0f} ms) the rest may take "
        f"{target_ms - measured:.0f} ms and takes {split.kind_ms('the rest'):.0f} ms; with both at the whole peak "
        f"({at_peak:.0f} ms) it may take {target_ms - at_peak:.0f} ms."
    ]


def table(splits: Sequence[Split], peak: float) -> list[str]:
    lines = ["| workload | kind | ms | share | GFLOP | GFLOP/s | x peak |", "|---|---|---|---|---|---|---|"]
    for split in splits:
        for kind in KINDS:
            ms, gflop = split.kind_ms(kind), split.flops[kind] / 1e9
            rate = f"{gflop / ms * 1e3:.1f}" if gflop and ms else "-"
            ratio = f"{gflop / ms * 1e3 / peak:.2f}" if gflop and ms else "-"
            lines.append(f"| {split.label} | {kind} | {ms:.1f} | {split.share[kind]:.0%} | {gflop:.2f} | {rate} | "
                         f"{ratio} |")
        total = sum(split.flops.values()) / 1e9
        rate = total / split.ms * 1e3
        lines.append(f"| {split.label} | **all** | {split.ms:.1f} | 100% | {total:.2f} | {rate:.1f} | "
                     f"{rate / peak:.2f} |")
    return lines


# ---------------------------------------------------------------------------- measuring
def median_ms(runs: dict[str, list[float]], name: str) -> float:
    return 1e3 * statistics.median(runs[name])


def profiled_share(run: Callable[[], None], repeats: int) -> dict[str, float]:
    """Fraction of self CPU time per kind over ``repeats`` calls of ``run`` under ``torch.profiler``."""
    from torch.profiler import profile

    with profile() as prof:
        for _ in range(repeats):
            run()
    seconds = split_by_kind((e.key, e.self_cpu_time_total / 1e6) for e in prof.key_averages())
    total = sum(seconds.values())
    return {k: v / total for k, v in seconds.items()}


def flops_by_kind(run: Callable[[], None]) -> dict[str, float]:
    """FLOPs of one ``run()`` per kind (``FlopCounterMode``, the CPU fused-attention kernels counted)."""
    return split_by_kind(bench.counted_flops_by_op(run).items())


def timed_alternating(impls, batches: dict[str, list], steps: int, run) -> dict[str, list[float]]:
    """Seconds per ``run(impl, batch)``, implementations alternating call by call (``vs_torch_brain.alternate``),
    after 3 untimed calls each."""
    for impl in impls:
        for b in batches[impl.name][:3]:
            run(impl, b)
    return bench.alternate(impls, steps, lambda impl, k: run(impl, batches[impl.name][k % len(batches[impl.name])]))


def measure(args: argparse.Namespace) -> tuple[list[Split], dict[str, float], dict[str, float]]:
    """spikefm's step and inference split, torch_brain's medians (if installed) and the 1-thread matmul peak."""
    setup = bench.Setup()
    recording = bench.build_recording(args.duration, setup, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"ours": Path(tmp) / "ours.h5", "tb": Path(tmp) / "tb.h5"}
        write_recording(recording, paths["ours"])
        if not args.no_torch_brain:
            bench.write_torch_brain_store(recording, paths["tb"])
        impls = bench.make_impls(recording, paths, setup, args.seed, not args.no_torch_brain)
        ours, theirs = impls[1], (impls[2] if len(impls) > 2 else None)  # spikefm packed, torch_brain
        timed = [ours] + ([theirs] if theirs else [])
        starts = bench.window_starts(recording.duration, setup, args.batches * setup.batch_size, args.seed)
        batches = {i.name: [i.pipeline(b) for b in starts.reshape(-1, setup.batch_size)] for i in timed}
        torch.set_num_threads(1)
        steps = timed_alternating(timed, batches, args.steps, lambda i, b: i.train_step(b))
        infers = timed_alternating(timed, batches, args.steps, lambda i, b: i.infer(b))
        batch = batches[ours.name][0]
        train_share = profiled_share(lambda: ours.train_step(batch), args.profile_repeats)
        infer_share = profiled_share(lambda: ours.infer(batch), args.profile_repeats)
        ours.model.train()
        train_flops = flops_by_kind(lambda: ours.loss(ours.model, batch).backward())
        ours.model.zero_grad(set_to_none=True)
        infer_flops = flops_by_kind(lambda: ours.infer(batch))
    splits = [Split("training step", median_ms(steps, ours.name), train_share, train_flops),
              Split("inference", median_ms(infers, ours.name), infer_share, infer_flops)]
    torch_brain = {"step": median_ms(steps, theirs.name), "inference": median_ms(infers, theirs.name)} if theirs else {}
    return splits, torch_brain, {"peak": bench.matmul_peak(1)}


# ---------------------------------------------------------------------------- report
def report(splits: Sequence[Split], torch_brain: dict[str, float], hw: dict[str, float], args, load) -> str:
    cpu, flags = bench.cpu_info()
    peak = hw["peak"]
    targets = {"training step": bench.STEP_TARGET * torch_brain["step"] if torch_brain else None,
               "inference": bench.INFER_TARGET * torch_brain["inference"] if torch_brain else None}
    lines = [
        "# spikefm POYO: where the step and inference time goes, against issue 20's targets", "",
        f"Generated by `python benchmarks/step_budget.py {' '.join(args.argv)}`".rstrip() + f" on "
        f"{datetime.date.today()} at commit {bench.commit()} (seed {args.seed}).", "",
        "## Setup", "",
        f"- CPU: {cpu}, 2 logical cores visible, flags: {flags}. One torch thread. 1-minute load average "
        f"{load[0]:.2f} before and {load[1]:.2f} after.",
        f"- {bench.versions()}; {args.allocator}.",
        "- The configuration of `benchmarks/vs_torch_brain.py` (POYO dim 128, depth 2, 2 heads x 64, 64 latents, "
        "batch 16, ~2,000 spikes per 1 s window, 100 queries per window), spikefm's packed layout, fused AdamW.",
        f"- Medians of {args.steps} steps (and inference passes) alternating with torch_brain's; the split by kind "
        f"from `torch.profiler` over {args.profile_repeats} calls, scaled to the median; FLOPs by `FlopCounterMode`.",
        f"- float32 matmul peak (`torch.mm` 1024^3, best of 12, 1 thread): {peak:.1f} GFLOP/s.", "",
        "## Split by kind of work", "", *table(splits, peak), "",
        "## Against the targets", "",
    ]
    if torch_brain:
        lines.append(f"torch_brain 0.2.1 in the same process: step {torch_brain['step']:.0f} ms, inference "
                     f"{torch_brain['inference']:.0f} ms (1 thread).")
        lines.append("")
        for split in splits:
            lines += budget_lines(split, targets[split.label], peak)
    else:
        lines.append("torch_brain not installed: no target to set the split against.")
    return "\n".join(lines) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=120.0, help="recording length in seconds")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batches", type=int, default=8, help="distinct pre-collated batches")
    parser.add_argument("--steps", type=int, default=16, help="timed steps (and inference passes) per implementation")
    parser.add_argument("--profile-repeats", type=int, default=4)
    parser.add_argument("--no-torch-brain", action="store_true")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.argv = list(argv or [])
    return args


def main(argv: Sequence[str] | None = None) -> list[Split]:
    args = parse_args(argv)
    args.allocator = bench.steady_allocator()
    load_before = os.getloadavg()[0]
    splits, torch_brain, hw = measure(args)
    text = report(splits, torch_brain, hw, args, (load_before, os.getloadavg()[0]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return splits


if __name__ == "__main__":
    main(sys.argv[1:])
