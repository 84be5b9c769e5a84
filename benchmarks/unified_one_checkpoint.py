"""One unified checkpoint, every task (issue 16): decoding, co-smoothing, forward prediction, zero-shot, streaming.

Trains the tiny recipe (``configs/unified_tiny.yaml``: behaviour + MtM's four masking schemes, 1,000 steps x 32)
once on four sessions of a fresh Lorenz world, then serves every task from that single model, with no further
training:

1. **decoding** (decode R2 on each training session's test trials; identities from 8 unlabeled train trials);
2. **co-smoothing** (held-out units' co-bps in 50 ms chunks; identities and triggered states registered from the
   session's first 64 train trials, each test trial scored alone);
3. **forward prediction** (the causal prompt: each 50 ms chunk's counts of every unit predicted from the chunks
   before it; bits/spike against each unit's mean rate);
4. **zero-shot transfer** to a fifth session it never saw: ``calibrate`` on 8 unlabeled trials, then decode and
   co-smooth it;
5. **streaming** the fifth session's first test trial chunk by chunk (``spikefm.realtime.StreamingDecoder``) and
   reporting its largest difference from the offline pass (float32 rounding of the spike times; ~1e-6 at the
   recipe's shortest rotary period of 1e-2 s, see docs/models/unified.md).

A demonstration of one checkpoint, not a protocol result: one seed, a fixed recipe (nothing is selected here),
no baselines. The protocol's numbers are in ``docs/results/protocol.md``. Each recipe gets a fresh world whose seed
is used nowhere else, so its test trials are read once, here: 6001 for the one-pass recipe (2026-12-04), 6002 for
the two-pass identity (2026-12-05, the default).

    OMP_NUM_THREADS=1 python benchmarks/unified_one_checkpoint.py --out benchmarks/results/unified_one_checkpoint.md
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse
import datetime
import platform
import time
from pathlib import Path

import numpy as np
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.evaluate import predict, score
from spikefm.eval.metrics import bits_per_spike, co_bps
from spikefm.models.registry import get_spec
from spikefm.objectives.unit_masking import UnitMasks
from spikefm.realtime import StreamingDecoder
from spikefm.tokenize.base import TokenType, collate
from spikefm.train.config import load_recipe
from spikefm.train.fit import fit

ROOT = Path(__file__).resolve().parent.parent


def split_trials(recording, split: str) -> np.ndarray:
    return np.flatnonzero(np.asarray(recording.trials.columns["split"]).astype(str) == split)


@torch.no_grad()
def unit_rates(model, tokenizer, recording, scheme: str, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Predicted rates and recorded counts [trials, chunks, units] of the scored units, each test trial alone."""
    model.eval()
    rates, counts = [], []
    for t0 in recording.trials.start[split_trials(recording, "test")]:
        batch = collate([tokenizer(recording.window(float(t0), float(t0) + 1.0))], pack=True)
        n = recording.n_units
        none = torch.zeros(1, n, dtype=torch.bool)
        masks = UnitMasks(scheme, none, torch.ones(1, n, dtype=torch.bool) if shift else none, shift)
        out = model(batch, masks)
        rates.append(out["unit_log_rates"].exp().T.numpy())  # [C, N]
        counts.append(out["unit_counts"].T.numpy())
    return np.stack(rates).astype(np.float64), np.stack(counts).astype(np.float64)


def session_scores(model, tokenizer, recording) -> dict[str, float]:
    """Decode R2, co-bps and next-chunk bits/spike of one session (calibrated, then forgotten)."""
    row = {}
    model.calibrate(recording, trials=split_trials(recording, "train")[:8])  # decoding: 8 unlabeled trials
    row["decode R2"] = score(predict(model, tokenizer, recording, split="test", pack=True))["decode R2"]
    model.calibrate(recording, trials=split_trials(recording, "train")[:64])  # co-smoothing: up to 64 train trials
    rates, counts = unit_rates(model, tokenizer, recording, "neuron", 0)  # held-out units hidden and scored
    row["co-bps"] = co_bps(rates, counts)
    rates, counts = unit_rates(model, tokenizer, recording, "causal", 1)  # every unit, chunk c from chunks < c
    row["next-chunk bits/spike"] = bits_per_spike(rates[:, 1:].reshape(-1, rates.shape[-1]),
                                                  counts[:, 1:].reshape(-1, counts.shape[-1]))  # fmt: skip
    model.forget(recording.session)
    return row


def streamed_vs_offline(model, tokenizer, recording) -> float:
    """Largest |streamed - offline| decoded velocity over the first test trial (16 chunks of 50 ms)."""
    model.eval()
    model.calibrate(recording, trials=split_trials(recording, "train")[:8])
    t0 = float(recording.trials.start[split_trials(recording, "test")[0]])
    tokens = tokenizer(recording.window(t0, t0 + 0.8))
    inputs = np.flatnonzero(~np.asarray(recording.units.heldout, bool))
    keys = [recording.unit_keys()[i] for i in inputs]
    with torch.no_grad():
        offline = model(collate([tokens], pack=True))["behavior"][0]  # [Q, 2]
    spikes = (tokens.token_type == TokenType.SPIKE) & np.isin(tokens.unit_index, inputs)
    streamed = StreamingDecoder(model, keys, recording.session).run(
        tokens.timestamps[spikes].astype(np.float32).astype(np.float64),  # the times the offline batch holds
        np.searchsorted(inputs, tokens.unit_index[spikes]),
        start=0.0, n_chunks=16)  # fmt: skip
    model.forget(recording.session)
    return float((streamed - offline[: streamed.shape[0]]).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=6002, help="the Lorenz world's generator seed")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "unified_one_checkpoint.md")
    parser.add_argument("--runs", default="runs/unified_one_checkpoint")
    args = parser.parse_args()
    torch.set_num_threads(1)
    world = generate(SyntheticConfig(n_sessions=5, n_trials=100, latent_system="lorenz", seed=args.seed)).recordings
    seen, unseen = world[:4], world[4]
    config = load_recipe(ROOT / "configs" / "unified_tiny.yaml",
                         [f"trainer.max_steps={args.steps}", f"trainer.out_dir={args.runs}", "trainer.seed=0",
                          "trainer.progress=false"])  # fmt: skip
    start, cpu = time.time(), time.process_time()
    result = fit(config, recordings=seen)
    wall, cpu = time.time() - start, time.process_time() - cpu
    model = result.module.model
    tokenizer = get_spec("unified").make_tokenizer(model.config)
    rows = {rec.session: session_scores(model, tokenizer, rec) for rec in seen}
    rows[f"{unseen.session} (zero-shot)"] = session_scores(model, tokenizer, unseen)
    gap = streamed_vs_offline(model, tokenizer, unseen)
    write(args.out, rows, gap, args, wall, cpu)
    print(args.out.read_text())


def write(path: Path, rows: dict, gap: float, args, wall: float, cpu: float) -> None:
    metrics = list(next(iter(rows.values())))
    lines = [
        f"# One unified checkpoint, every task (benchmarks/unified_one_checkpoint.py, {datetime.date.today()})", "",
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, load "
        f"{os.getloadavg()[0]:.1f}; Lorenz world seed {args.seed} (5 sessions x 100 trials); the tiny recipe "
        f"trained once on the first four for {args.steps} steps x 32 ({wall:.0f} s wall, {cpu:.0f} s CPU), "
        "training seed 0. One seed, fixed recipe, no selection, no baselines: a demonstration that one model "
        "serves every task, not a protocol result.", "",
        "| session | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics),
    ]  # fmt: skip
    lines += [f"| {s} | " + " | ".join(f"{r[m]:.3f}" for m in metrics) + " |" for s, r in rows.items()]
    lines += ["", f"Streaming the unseen session's first test trial (16 chunks of 50 ms) against the offline pass: "
                  f"largest difference {gap:.1e}."]  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
