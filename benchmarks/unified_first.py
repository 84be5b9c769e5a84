"""A first measurement of the unified model against its parents on the Lorenz testbed (one seed).

Trains, on the same synthetic data (``configs/unified_tiny.yaml``'s: 4 Lorenz sessions, seed 0),
the tiny recipes of unified, POYO, POSSM, SPINT and MtM with the step counts given, then scores
on the test trials of every session:

* within-session velocity R2 (``spikefm.eval.evaluate``: first second of each test trial);
  unified and SPINT also with 8 registered *train* trials as unlabeled calibration;
* co-bps on the held-out units (NLB ``co_bps``) for MtM (its own eval, bins ``--bin``) and
  unified (held-out units hidden from the input, their counts predicted per chunk from their
  identities; calibration from 8 train trials, so no held-out test spike is read). MtM is
  trained here with ``bin_size`` = unified's chunk so both score the same bins.

Writes a markdown table to ``--out``. Not the protocol of issue 15 (no validation selection,
one seed, no intervals): a first look.

    OMP_NUM_THREADS=1 nice python benchmarks/unified_first.py --out benchmarks/results/unified_first.md
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

from spikefm.eval.evaluate import predict, score
from spikefm.eval.metrics import co_bps
from spikefm.models.registry import get_spec
from spikefm.objectives.unit_masking import UnitMasks
from spikefm.tokenize.base import collate
from spikefm.train.config import load_recipe
from spikefm.train.fit import fit

ROOT = Path(__file__).resolve().parent.parent
DATA = ["data.synthetic.latent_system=lorenz", "data.window=1.0", "data.sampler=trials", "trainer.seed=0"]


def train(name: str, steps: int, batch: int, extra: list[str], out_dir: str):
    overrides = [*DATA, f"trainer.max_steps={steps}", f"trainer.batch_size={batch}", f"trainer.out_dir={out_dir}",
                 f"trainer.val_every={steps}", *extra]  # fmt: skip
    config = load_recipe(ROOT / "configs" / f"{name}_tiny.yaml", overrides)
    start, cpu = time.time(), time.process_time()
    result = fit(config)
    return result, time.time() - start, time.process_time() - cpu


def train_starts(recording, n: int) -> np.ndarray:
    split = np.asarray(recording.trials.columns["split"]).astype(str)
    return recording.trials.start[split == "train"][:n]


def unified_cobps(model, tokenizer, recording, n_calibration: int = 8) -> float:
    """co-bps of the held-out units: hidden from the input, counts predicted per chunk."""
    model.eval()
    model.calibrate(recording, starts=train_starts(recording, n_calibration))
    split = np.asarray(recording.trials.columns["split"]).astype(str)
    rates, counts = [], []
    held = int(recording.units.heldout.sum())
    none = torch.zeros(1, recording.n_units, dtype=torch.bool)
    with torch.no_grad():
        for t0 in recording.trials.start[split == "test"]:
            batch = collate([tokenizer(recording.window(float(t0), float(t0) + 1.0))], pack=True)
            out = model(batch, UnitMasks("neuron", none, none, 0))  # held-out units: hidden and scored
            assert out["unit_log_rates"].shape[0] == held
            rates.append(out["unit_log_rates"].exp().T.numpy())  # [C, N_held]
            counts.append(out["unit_counts"].T.numpy())
    model._calibration.pop(recording.session)
    return float(co_bps(np.stack(rates), np.stack(counts)))


def registered_r2(model, tokenizer, recording, pack: bool, n: int = 8) -> float:
    model.calibrate(recording, starts=train_starts(recording, n))
    r2 = score(predict(model, tokenizer, recording, split="test", pack=pack))["vel R2"]
    model._calibration.pop(recording.session)
    return r2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=json.loads, default='{"unified": 1000, "poyo": 1000, "possm": 1000, '
                        '"spint": 1200, "mtm": 1500}')  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "unified_first.md")
    parser.add_argument("--runs", default="runs/unified_first")
    parser.add_argument("--extra", type=json.loads, default="{}",
                        help='more recipe overrides per model, e.g. {"unified": ["model.overrides.schemes=[]"]}')
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = {"unified": 32, "poyo": 32, "possm": 32, "spint": 64, "mtm": 32}
    extra = {"mtm": ["model.overrides.bin_size=0.05"]}
    for name, more in args.extra.items():
        extra[name] = extra.get(name, []) + more
    rows, cost = {}, {}
    for name, steps in args.steps.items():
        result, wall, cpu = train(name, steps, batches[name], extra.get(name, []), args.runs)
        spec, model = get_spec(name), result.module.model
        tokenizer = spec.make_tokenizer(model.config)
        cost[name] = (steps, batches[name], wall, cpu)
        rows[name] = {}
        for rec in result.recordings:
            scores = score(predict(model, tokenizer, rec, split="test", pack=spec.pack))
            row = {k: float(v) for k, v in scores.items()}
            if name in ("unified", "spint"):
                row["vel R2 (8 train trials calibration)"] = registered_r2(model, tokenizer, rec, spec.pack)
            if name == "unified" and model.config.heldout_targets:
                row["co-bps"] = unified_cobps(model, tokenizer, rec)
            rows[name][rec.session] = row
        print(name, json.dumps(rows[name]), f"wall {wall:.0f} s cpu {cpu:.0f} s", flush=True)
        write(args.out, rows, cost)  # after every model, so a cut-short run keeps what it has


def write(path: Path, rows: dict, cost: dict) -> None:
    sessions = sorted(next(iter(rows.values())))
    lines = [
        f"# unified vs parents, Lorenz testbed (benchmarks/unified_first.py, {datetime.date.today()})", "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, seed 0, load "
        f"{os.getloadavg()[0]:.1f}.", "", "| model | metric | " + " | ".join(sessions) + " | mean |",
        "|---|---|" + "---|" * (len(sessions) + 1),
    ]  # fmt: skip
    for name, per in rows.items():
        for metric in sorted({m for r in per.values() for m in r}):
            values = [per[s].get(metric, float("nan")) for s in sessions]
            cells = " | ".join(f"{v:.3f}" for v in values)
            lines.append(f"| {name} | {metric} | {cells} | {np.nanmean(values):.3f} |")
    lines += ["", "| model | steps x batch | wall (s) | CPU (s) |", "|---|---|---|---|"]
    lines += [f"| {n} | {s} x {b} | {w:.0f} | {c:.0f} |" for n, (s, b, w, c) in cost.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
