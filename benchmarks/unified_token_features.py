"""What the unified model's spike token carries: identity only vs identity + the unit's chunk count (issue 16).

A controlled comparison on **validation** data only: the Lorenz testbed of
``configs/unified_tiny.yaml`` (synthetic draw 0, 4 sessions), the tiny recipe trained for
``--steps`` steps per arm and seed, the two arms differing only in ``token_counts``:

* ``identity``: a spike token = its unit's IDEncoder identity + token type (the model as built);
* ``identity+count``: + a learned linear map of ``log1p`` of the unit's spike count in the
  token's 50 ms chunk (observed, per token; no per-unit or per-session parameter, so zero-shot
  mode and permutation invariance are unchanged).

Scores on each session's **val** trials, identities calibrated on the session's first 8 train
trials (unlabeled): velocity decode R2 (``spikefm.eval``) and co-bps of the held-out units (hidden
from the input, counts predicted per chunk). The test split is never read. Writes a markdown
table after every run to ``--out`` (its rows also as .json; ``--render`` rewrites the table from it).

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/unified_token_features.py --steps 300 --seeds 0 1 2
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse
import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from spikefm.eval.evaluate import predict, score
from spikefm.eval.metrics import co_bps
from spikefm.models.registry import get_spec
from spikefm.objectives.unit_masking import UnitMasks
from spikefm.tokenize.base import collate
from spikefm.train.config import load_recipe
from spikefm.train.fit import fit

ROOT = Path(__file__).resolve().parent.parent
ARMS = {"identity": "false", "identity+count": "true"}
SPLIT = "val"  # the test split is sealed: this experiment chooses a recipe


def train(arm: str, seed: int, steps: int, out_dir: str):
    overrides = [f"trainer.seed={seed}", f"trainer.max_steps={steps}", f"trainer.val_every={steps}",
                 f"trainer.out_dir={out_dir}", f"model.overrides.token_counts={ARMS[arm]}"]  # fmt: skip
    config = load_recipe(ROOT / "configs" / "unified_tiny.yaml", overrides)
    start, cpu = time.time(), time.process_time()
    result = fit(config)
    return result, time.time() - start, time.process_time() - cpu


def train_starts(recording, n: int = 8) -> np.ndarray:
    split = np.asarray(recording.trials.columns["split"]).astype(str)
    return recording.trials.start[split == "train"][:n]


def val_scores(model, tokenizer, recording) -> dict[str, float]:
    """vel R2 and held-out co-bps on ``recording``'s val trials, calibrated on its first 8 train trials."""
    model.eval()
    r2 = score(predict(model, tokenizer, recording, split=SPLIT, pack=True))["decode R2"]  # calibrates as spikefm eval
    model.calibrate(recording, starts=train_starts(recording))
    split = np.asarray(recording.trials.columns["split"]).astype(str)
    none = torch.zeros(1, recording.n_units, dtype=torch.bool)
    rates, counts = [], []
    with torch.no_grad():
        for t0 in recording.trials.start[split == SPLIT]:
            batch = collate([tokenizer(recording.window(float(t0), float(t0) + 1.0))], pack=True)
            out = model(batch, UnitMasks("neuron", none, none, 0))  # held-out units: hidden and scored
            rates.append(out["unit_log_rates"].exp().T.numpy())
            counts.append(out["unit_counts"].T.numpy())
    model.forget(recording.session)
    return {"vel R2": float(r2), "co-bps": float(co_bps(np.stack(rates), np.stack(counts)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "unified_token_features.md")
    parser.add_argument("--runs", default="runs/unified_token_features")
    parser.add_argument("--render", type=Path, help="only rewrite --out from a saved .json of rows")
    args = parser.parse_args()
    if args.render:
        saved = json.loads(args.render.read_text())
        write(args.out, saved["rows"], saved["steps"], saved["load"])
        return
    torch.set_num_threads(1)
    rows: list[dict] = []
    for seed in args.seeds:
        for arm in ARMS:
            result, wall, cpu = train(arm, seed, args.steps, args.runs)
            model = result.module.model
            tokenizer = get_spec("unified").make_tokenizer(model.config)
            for rec in result.recordings:
                rows.append({"arm": arm, "seed": seed, "session": rec.session, "wall": wall, "cpu": cpu,
                             **val_scores(model, tokenizer, rec)})  # fmt: skip
            print(arm, seed, f"wall {wall:.0f} s cpu {cpu:.0f} s", rows[-1], flush=True)
            write(args.out, rows, args.steps)


def seed_interval(values: list[float]) -> tuple[float, float]:
    """95% t-interval of the mean of ``values`` (nan with fewer than two)."""
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return float(np.mean(values) - half), float(np.mean(values) + half)


def write(path: Path, rows: list[dict], steps: int, load: float | None = None) -> None:
    """The markdown table (and its rows as .json beside it); ``load``: the run's 1-min load, default now."""
    load = os.getloadavg()[0] if load is None else load
    metrics = ["vel R2", "co-bps"]
    lines = [
        f"# unified token features on val (benchmarks/unified_token_features.py, {datetime.date.today()})", "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, load "
        f"{load:.1f} (1-min average when the table was written); Lorenz draw 0, {steps} steps x 32 per run, "
        "val split only.", "",
        "Per seed: mean over the 4 sessions' val trials.", "",
        "| arm | seed | " + " | ".join(metrics) + " | train wall / CPU (s) |",
        "|---|---|" + "---|" * (len(metrics) + 1),
    ]  # fmt: skip
    runs = sorted({(r["arm"], r["seed"]) for r in rows}, key=lambda x: (x[1], list(ARMS).index(x[0])))
    for arm, seed in runs:
        mine = [r for r in rows if (r["arm"], r["seed"]) == (arm, seed)]
        cells = " | ".join(f"{np.mean([r[m] for r in mine]):.3f}" for m in metrics)
        lines.append(f"| {arm} | {seed} | {cells} | {mine[0]['wall']:.0f} / {mine[0]['cpu']:.0f} |")
    seeds = sorted({s for a, s in runs if all((b, s) in runs for b in ARMS)})
    if seeds:
        lines += ["", "Paired difference (identity+count - identity), per seed, mean over sessions; 95% t-interval "
                  "over seeds (the seed is the unit of replication):", "",
                  "| metric | " + " | ".join(f"seed {s}" for s in seeds) + " | mean | 95% interval |",
                  "|---|" + "---|" * (len(seeds) + 2)]  # fmt: skip
        for m in metrics:
            diffs = [np.mean([r[m] for r in rows if r["seed"] == s and r["arm"] == "identity+count"])
                     - np.mean([r[m] for r in rows if r["seed"] == s and r["arm"] == "identity"]) for s in seeds]
            low, high = seed_interval(diffs)
            lines.append(f"| {m} | " + " | ".join(f"{d:+.3f}" for d in diffs)
                         + f" | {np.mean(diffs):+.3f} | {low:+.3f}..{high:+.3f} |")
        lines += ["", "Per session:", "", "| arm | seed | session | " + " | ".join(metrics) + " |",
                  "|---|---|---|" + "---|" * len(metrics)]  # fmt: skip
        lines += [f"| {r['arm']} | {r['seed']} | {r['session']} | " + " | ".join(f"{r[m]:.3f}" for m in metrics) + " |"
                  for r in rows]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"steps": steps, "load": load, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
