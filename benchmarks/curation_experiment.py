"""Curated-k vs random-k vs all-N pretraining, and transfer score vs number of pretraining sessions.

On a heterogeneous synthetic corpus (``spikefm synth DIR --groups 8``), for each held-out target
session: rank the other sessions by population-statistics similarity
(:mod:`spikefm.data.curation`), pretrain tiny POYO (``spikefm pretrain``'s code, Lightning, same
steps and batch for every set) on the top-k, on k random sessions, and on all of them, then
``finetune --mode recalibrate`` on the target's first ``--calibration`` train trials and score
velocity R2 on its test trials. For the first target, also random sets of 4, 16, 64 sessions (the
scale curve). Every pretraining run has the same optimizer steps, so "all" costs the same compute
as "k": the comparison is about which data, not how much compute (``--sets all --steps 1500`` gives all-N
ten times the compute instead). Writes JSON lines to ``--out``.

    spikefm synth runs/corpus256 --sessions 256 --groups 8 --trials 40 --units 20-80
    python benchmarks/curation_experiment.py runs/corpus256 --out benchmarks/results/curation.jsonl
    python benchmarks/curation_experiment.py runs/corpus256 --seed 1 --sets curated random all --out ...  # more seeds
    python benchmarks/curation_experiment.py --summarize benchmarks/results/curation.jsonl   # mean and 95% interval

The seed sets the pretraining and adaptation seeds and the random sets' draw. ``--summarize`` groups the
records of the default recipe (150 steps) by target and set, over seeds (records without a seed are seed 0), pools
the targets (the mean of each target's mean difference, a t interval over targets), and gives the scale curve over
seeds (``--seed S --sets curve`` adds a seed's curve).
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path, where benchmarks/tokenize.py would shadow
# the standard library's ``tokenize``: drop the folder first.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import json
import resource
import time
from pathlib import Path


def seed_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t interval over seeds (NaN bounds for one seed)."""
    import numpy as np
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if x.size < 2:
        return float(x.mean()), float("nan"), float("nan")
    half = stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return float(x.mean()), float(x.mean() - half), float(x.mean() + half)


def summarize(path: Path, steps: int = 150) -> str:
    """Markdown: per target, each set's vel R2 over seeds and curated minus random / all, paired by seed."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by: dict[tuple[str, str], dict[int, float]] = {}
    for r in records:
        if r.get("steps") == steps and r["set"] in ("curated", "random", "all"):
            by.setdefault((r["target"], r["set"]), {})[r.get("seed", 0)] = r["vel_r2"]

    def cell(values: list[float]) -> str:
        mean, lo, hi = seed_interval(values)
        return f"{mean:+.3f}" + ("" if lo != lo else f" [{lo:+.3f}, {hi:+.3f}]")

    lines = ["| target | set | seeds | vel R2, mean [95% t interval over seeds] |", "|---|---|---:|---|"]
    diffs = ["", "| target | difference (paired by seed) | seeds | mean [95% interval] | excludes zero |",
             "|---|---|---:|---|---|"]
    per_target: dict[str, list[float]] = {"random": [], "all": []}  # each target's mean difference
    for target in sorted({t for t, _ in by}):
        for name in ("curated", "random", "all"):
            scores = by.get((target, name), {})
            if scores:
                lines.append(f"| {target} | {name} | {len(scores)} | {cell(list(scores.values()))} |")
        curated = by.get((target, "curated"), {})
        for other in ("random", "all"):
            seeds = sorted(set(curated) & set(by.get((target, other), {})))
            if len(seeds) >= 2:
                delta = [curated[s] - by[(target, other)][s] for s in seeds]
                _, lo, hi = seed_interval(delta)
                diffs.append(f"| {target} | curated - {other} | {len(seeds)} | {cell(delta)} | "
                             f"{'yes' if lo > 0 or hi < 0 else 'no'} |")
                per_target[other].append(sum(delta) / len(delta))
    for other, means in per_target.items():
        if len(means) >= 2:  # targets as the unit: the mean of their mean differences, t interval over targets
            _, lo, hi = seed_interval(means)
            diffs.append(f"| all {len(means)} targets | curated - {other} | {len(means)} targets | {cell(means)} | "
                         f"{'yes' if lo > 0 or hi < 0 else 'no'} |")
    return "\n".join(lines + (diffs if len(diffs) > 3 else []) + _curve(records, steps)) + "\n"


def _curve(records: list[dict], steps: int) -> list[str]:
    """The scale curve over seeds: vel R2 by number of random pretraining sessions (``random<n>`` sets of the
    curve's target, and its ``all`` set), mean and 95% t interval over seeds."""
    curve = [r for r in records if r.get("steps") == steps and r["set"].startswith("random") and r["set"] != "random"]
    if not curve:
        return []
    target = curve[0]["target"]
    by: dict[int, dict[int, float]] = {}
    for r in records:
        if r.get("steps") == steps and r["target"] == target and r["set"].startswith(("random", "all")):
            by.setdefault(r["n_sessions"], {})[r.get("seed", 0)] = r["vel_r2"]
    lines = ["", f"Scale curve, target {target} (random sets; all = every pool session):", "",
             "| pretraining sessions | seeds | vel R2, mean [95% t interval over seeds] |", "|---:|---:|---|"]
    for n in sorted(by):
        mean, lo, hi = seed_interval(list(by[n].values()))
        lines.append(f"| {n} | {len(by[n])} | {mean:+.3f}" + ("" if lo != lo else f" [{lo:+.3f}, {hi:+.3f}]") + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path, nargs="?")
    parser.add_argument("--targets", nargs="+", default=["g4-rot-31", "g1-lor-31"])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--curve", nargs="*", type=int, default=[4, 16, 64])
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--calibration", type=int, default=16)
    parser.add_argument("--adapt-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sets", nargs="+", default=["curated", "random", "curve", "all"],
                        choices=["curated", "random", "curve", "all"], help="which pretraining sets to run")
    parser.add_argument("--out", type=Path, help="JSON lines to append to (required with a corpus)")
    parser.add_argument("--summarize", type=Path, help="print the table of this JSON-lines file and stop")
    parser.add_argument("--work", type=Path, default=Path("/tmp/spikefm_curation"))
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize), end="")
        return
    if args.corpus is None or args.out is None:
        parser.error("give a corpus folder and --out (or --summarize FILE)")

    import numpy as np
    import torch

    from spikefm.data.corpus import Corpus
    from spikefm.data.curation import rank_sessions, session_stats
    from spikefm.train.config import RunConfig
    from spikefm.train.finetune import finetune, pretrain

    torch.set_num_threads(1)
    everything = Corpus.open(args.corpus)
    pool = everything.select([s for s in everything.sessions if s not in args.targets])
    start = time.perf_counter()
    stats = [session_stats(r) for r in pool.recordings]
    stats_seconds = time.perf_counter() - start
    rng = np.random.default_rng(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pretrained: dict[tuple, tuple] = {}

    def run(label: str, target_id: str, sessions: list[str]) -> dict:
        config = RunConfig.from_dict({
            "name": f"{label}-{target_id}", "model": {"name": "poyo"},
            "data": {"sampler": "trials", "window": 1.0},
            "trainer": {"max_steps": args.steps, "batch_size": args.batch_size, "lr": 2e-3, "warmup_steps": 15,
                        "val_every": args.steps, "seed": args.seed, "out_dir": str(args.work), "progress": False,
                        "accelerator": "cpu"},
        })
        key = tuple(sorted(sessions))
        if key not in pretrained:  # "all" is pretrained once and transferred to every target
            t0 = time.perf_counter()
            result = pretrain(config, corpus=pool.select(sessions), out=args.work / f"{label}-{target_id}" / "pretrained")
            pretrained[key] = (result.pretrained_dir, time.perf_counter() - t0)
        pretrained_dir, pretrain_seconds = pretrained[key]
        target = everything.recordings[everything.sessions.index(target_id)].load()
        adapted = finetune(pretrained_dir, target, mode="recalibrate", trials=args.calibration,
                           settings={"adapt_steps": args.adapt_steps, "seed": args.seed}, log=lambda _: None)
        record = {
            "target": target_id, "set": label, "seed": args.seed, "n_sessions": len(sessions), "steps": args.steps,
            "batch_size": args.batch_size, "vel_r2": adapted.row.score, "pretrain_s": round(pretrain_seconds, 1),
            "finetune_s": round(adapted.row.seconds, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "same_group": sum(s.split("-")[0] == target_id.split("-")[0] for s in sessions),
            "load_average": os.getloadavg()[0],
        }
        with args.out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        print(json.dumps(record), flush=True)
        return record

    print(json.dumps({"stats_seconds": round(stats_seconds, 1), "pool": len(pool)}), flush=True)
    for i, target_id in enumerate(args.targets):
        target = everything.recordings[everything.sessions.index(target_id)]
        ranking = rank_sessions(target, pool.recordings, stats=stats)
        random_k = list(rng.choice(pool.sessions, size=args.k, replace=False))  # drawn whether run or not
        if "curated" in args.sets:
            run("curated", target_id, [r.session for r in ranking[: args.k]])
        if "random" in args.sets:
            run("random", target_id, random_k)
        if i == 0:
            for n in args.curve:
                sessions = list(rng.choice(pool.sessions, size=n, replace=False))
                if "curve" in args.sets:
                    run(f"random{n}", target_id, sessions)
    if "all" in args.sets:
        for target_id in args.targets:
            run("all", target_id, pool.sessions)


if __name__ == "__main__":
    main()
