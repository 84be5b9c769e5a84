"""Validation probe (issue 16): how much a label-free identity depends on *which* unlabeled trials calibrate it.

A transfer world's fixed pretraining (1,000 steps on its first 4 sessions, seed ``--seed``), then, with no gradient
step, the new session is calibrated on each of five disjoint sets of 8 train trials (trials 0-7, 8-15, ..., 32-39 of
its train split), on the first 16 and on the first 32 (the protocol's k = 8 / 16 / 32 sets are the first of these),
and decode R2 is measured on its **val** trials (test trials sealed: :func:`spikefm.eval.sealed.seal`), against the
recorded behaviour and, from the world's ground truth, against the noise-free behaviour of the *mirrored* latent
trajectory: the Lorenz system is symmetric under (x, y, z) -> (-x, -y, z), so a population read through W and one read
through W diag(-1, -1, 1) fire alike and an identity from unlabeled spikes alone cannot tell them apart. One row per
(world, seed, variant) is appended to the results JSON (``--cache DIR`` keeps each pretrained model, so a row can be
scored again without pretraining):

    OMP_NUM_THREADS=1 python benchmarks/calibration_sets.py --world 0 --variant two_pass
    OMP_NUM_THREADS=1 python benchmarks/calibration_sets.py --world 0 --variant spint --model spint
    OMP_NUM_THREADS=1 python benchmarks/calibration_sets.py --world 0 --variant ridge0.1 input_ridge=0.1
    python benchmarks/calibration_sets.py --render

About 3-4 CPU-minutes per row (2-core AMD EPYC, one thread). Result: docs/results/protocol.md, the thirty-third
sitting's declaration. (The ``calibration_dropout`` rows were measured while that option existed, dbad229 to
795036f.)
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "calibration_sets.json"
SETS = {**{f"trials {a}-{a + 7}": (a, a + 8) for a in range(0, 40, 8)}, "first 16": (0, 16), "first 32": (0, 32)}


def mirrored_behavior(world: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The new session's noise-free behaviour of the true latents and of the mirrored ones ([T, B] each), and the
    seconds per row, regenerated from the world's seed (the same draw as ``TransferWorld().draw(world)``)."""
    from spikefm.data.synthetic import SyntheticConfig, generate
    from spikefm.eval.transfer_candidate import TransferWorld

    w = TransferWorld()
    truth = generate(SyntheticConfig(n_sessions=w.n_sessions, n_trials=w.n_trials, units_per_session=w.units,
                                     latent_system=w.system, seed=world))  # fmt: skip
    latents, readout = truth.latents[-1], truth.behavior_readout
    return latents @ readout.T, latents @ np.diag([-1.0, -1.0, 1.0]) @ readout.T, truth.rate_bin_size


def r2_at_queries(out, behavior: np.ndarray, dt: float) -> float:
    """Mean over dimensions of R2 of the decoded behaviour against ``behavior`` [T, B] at the valid queries."""
    mask = np.asarray(out.query_mask)
    times = (np.asarray(out.starts)[:, None] + np.asarray(out.query_times))[mask]
    truth = behavior[np.clip(np.floor(times / dt).astype(int), 0, len(behavior) - 1)]
    predicted = np.asarray(out.behavior)[mask]
    return float(np.mean(1 - ((predicted - truth) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)))


def pretrained(candidate, session: str, seed: int, cache: Path | None, name: str) -> torch.nn.Module:
    """The candidate's pretrained model, from ``cache`` when it holds it (written there otherwise)."""
    path = None if cache is None else cache / f"{name}.pt"
    if path is not None and path.exists():
        return torch.load(path, weights_only=False)
    model = candidate._pretrained(session, seed)
    if path is not None:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save(model, path)
    return model


def score(world: int, seed: int, model: str, overrides: dict, cache: Path | None = None, variant: str = "") -> dict:
    from spikefm.eval.candidates import predicted_decoder_scores
    from spikefm.eval.evaluate import predict
    from spikefm.eval.sealed import seal
    from spikefm.eval.transfer_candidate import (
        TransferCandidate, TransferWorld, _rows_at, _train_trial_starts, transfer_task,
    )  # fmt: skip

    sources, target = TransferWorld().draw(world)
    dev, _ = seal(target, name=target.session)  # the test trials never reach this script
    candidate = TransferCandidate(model, "zero_shot", 8, transfer_task(), {dev.session: sources}, overrides=overrides)
    t0 = time.process_time()
    fitted = pretrained(candidate, dev.session, seed, cache, f"world{world}_seed{seed}_{variant}").eval()
    tokenizer, pool = candidate.spec.make_tokenizer(candidate.config), _train_trial_starts(dev)
    true, mirrored, dt = mirrored_behavior(world)
    row: dict = {"world": world, "seed": seed, "model": model, "overrides": overrides}
    for name, (first, last) in SETS.items():
        fitted.forget(dev.session)
        fitted.calibrate(dev, _rows_at(dev, pool[first:last]))  # registered: predict keeps it
        out = predict(fitted, tokenizer, dev, split="val", window=candidate.task.window, pack=candidate.spec.pack)
        row[name] = float(predicted_decoder_scores(candidate.metric, out).score())
        row[f"{name}, noise-free"] = r2_at_queries(out, true, dt)
        row[f"{name}, mirrored"] = r2_at_queries(out, mirrored, dt)
    row["cpu_s"] = time.process_time() - t0
    return row


def render(rows: list[dict]) -> str:
    """Val decode R2 per calibration set; in brackets, R2 against the mirrored behaviour where it is the higher."""
    eights = [name for name in SETS if name.startswith("trials")]
    lines = ["| variant | world | seed | " + " | ".join(SETS) + " | mean of the 8-trial sets | worst |",
             "|---|---|---|" + "---|" * (len(SETS) + 2)]
    for r in sorted(rows, key=lambda r: (r["variant"], r["world"], r["seed"])):
        values = [r[name] for name in eights]
        cells = [f"{r[name]:.3f}" + (f" (mirrored {r[name + ', mirrored']:.2f})"
                                     if r[name + ", mirrored"] > r[name + ", noise-free"] else "") for name in SETS]
        lines.append(f"| {r['variant']} | {r['world']} | {r['seed']} | " + " | ".join(cells)
                     + f" | {np.mean(values):.3f} | {min(values):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="unified", choices=["unified", "spint"])
    parser.add_argument("--variant", help="the row's name")
    parser.add_argument("overrides", nargs="*", help="config overrides key=value (JSON values)")
    parser.add_argument("--render", action="store_true", help="print the table of the saved rows")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--cache", type=Path, help="a folder keeping each pretrained model")
    args = parser.parse_args(argv)
    rows = json.loads(args.results.read_text()) if args.results.exists() else []
    if args.render:
        print(render(rows))
        return
    if args.world is None or args.variant is None:
        parser.error("--world and --variant are required unless --render")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    overrides = {key: json.loads(value) for key, value in (item.split("=", 1) for item in args.overrides)}
    row = {"variant": args.variant, **score(args.world, args.seed, args.model, overrides, args.cache, args.variant)}
    rows = json.loads(args.results.read_text()) if args.results.exists() else []  # again: rows other runs wrote
    keep = [r for r in rows if (r["variant"], r["world"], r["seed"]) != (args.variant, args.world, args.seed)]
    args.results.write_text(json.dumps(keep + [row], indent=1))
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
