"""Do M1 units' loadings on their population's principal components carry their velocity tuning?

Train and validation blocks of M1 only (the first 80% of the session in time; the protocol's test blocks, the last
20%, are never read). Counts in 50 ms bins. Three numbers per setting (n unlabeled 1 s train blocks, k components):

* ``cca``: canonical correlations between the units' loadings on the top k components (from the n blocks) and
  their signed velocity tuning (ordinary least squares of each unit's counts on (vx, vy), all train blocks);
* ``stability``: per-component correlation of the loadings from two independent draws of n blocks (after the sign
  convention of :func:`spikefm.nn.population.population_loadings`): whether the frame repeats;
* ``ceiling``: validation R2 of a causal linear decoder (8 lags of 50 ms, ridge 10) reading the k component scores
  of every bin, fitted on the train blocks; against the same decoder on every unit.

    python benchmarks/m1_population_frame.py        # ~20 s, writes benchmarks/results/m1_population_frame.md
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path and its tokenize.py would shadow the standard library's.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import datetime
from pathlib import Path

import numpy as np

from spikefm.data.count_files import read_count_file
from spikefm.nn.population import population_loadings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "m1_reaching" / "m1_stevenson_2011.mat"
OUT = Path(__file__).resolve().parent / "results" / "m1_population_frame.md"
BIN, BLOCK_BINS, LAGS, RIDGE, REPEATS = 0.05, 20, 8, 10.0, 5


def binned(path: Path) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Counts [T, U], z-scored velocity [T, 2] (train statistics), train end and validation end (bins)."""
    rec = read_count_file(path)
    n = int((rec.end - rec.start) / BIN)
    counts = rec.bin(BIN, rec.start, rec.start + n * BIN).astype(np.float64)
    series = rec.behavior["hand_vel"]
    centres = rec.start + (np.arange(n) + 0.5) * BIN
    velocity = np.stack([np.interp(centres, series.timestamps, np.asarray(series.values)[:, i]) for i in range(2)], 1)
    train_end, val_end = int(0.7 * n), int(0.8 * n)
    velocity = (velocity - velocity[:train_end].mean(0)) / velocity[:train_end].std(0)
    return counts[:val_end], velocity[:val_end], train_end, val_end


def canonical_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    qa, _ = np.linalg.qr(a - a.mean(0))
    qb, _ = np.linalg.qr(b - b.mean(0))
    return np.linalg.svd(qa.T @ qb, compute_uv=False)


def block_counts(counts: np.ndarray, train_end: int, n: int, rng: np.random.Generator) -> np.ndarray:
    starts = rng.integers(0, train_end - BLOCK_BINS, n)
    return np.concatenate([counts[s : s + BLOCK_BINS] for s in starts])


def ceiling_r2(features: np.ndarray, velocity: np.ndarray, train_end: int) -> float:
    lagged = np.concatenate([np.roll(features, lag, 0) for lag in range(LAGS)] + [np.ones((len(features), 1))], 1)
    a, b = lagged[LAGS:train_end], lagged[train_end:]
    weights = np.linalg.solve(a.T @ a + RIDGE * np.eye(a.shape[1]), a.T @ velocity[LAGS:train_end])
    truth, pred = velocity[train_end:], b @ weights
    return float(np.mean(1 - ((truth - pred) ** 2).sum(0) / ((truth - truth.mean(0)) ** 2).sum(0)))


def scores(counts, velocity, train_end, n_blocks, k, rng) -> dict[str, np.ndarray | float]:
    design = np.c_[np.ones(train_end), velocity[:train_end]]
    tuning = np.linalg.lstsq(design, counts[:train_end], rcond=None)[0][1:].T  # [U, 2]
    cca, stability, ceiling = [], [], []
    for _ in range(REPEATS):
        calibration = block_counts(counts, train_end, n_blocks, rng)
        loadings = population_loadings(calibration, k).astype(np.float64)
        other = population_loadings(block_counts(counts, train_end, n_blocks, rng), k).astype(np.float64)
        cca.append(canonical_correlations(loadings, tuning))
        stability.append([np.corrcoef(loadings[:, j], other[:, j])[0, 1] for j in range(min(k, 4))])
        spread = calibration.std(0)
        z = (counts - calibration.mean(0)) / np.where(spread > 0, spread, 1.0)
        components = np.linalg.svd((calibration - calibration.mean(0)) / np.where(spread > 0, spread, 1.0),
                                   full_matrices=False)[2][:k]
        ceiling.append(ceiling_r2(z @ components.T, velocity, train_end))
    return {"cca": np.mean(cca, 0), "stability": np.mean(stability, 0), "ceiling": float(np.mean(ceiling))}


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    counts, velocity, train_end, _ = binned(args.data)
    rng = np.random.default_rng(0)
    every_unit = ceiling_r2(np.sqrt(counts), velocity, train_end)
    lines = [
        "# M1: do units' loadings on their population's components carry their tuning?",
        "",
        f"Generated by `python benchmarks/m1_population_frame.py` on {datetime.date.today()} (seed 0, {REPEATS} "
        "draws per row). M1 (Stevenson 2011, 171 units), 50 ms bins; train blocks = the first 70% of the session, "
        "validation = the next 10%; the test blocks (last 20%) are not read. See the script's docstring.",
        "",
        f"Causal linear decoder on every unit (sqrt counts, {LAGS} lags, ridge {RIDGE:g}): validation R2 "
        f"**{every_unit:.3f}**.",
        "",
        "| unlabeled 1 s train blocks | components k | CCA(loadings, signed tuning) | frame repeat (corr. of "
        "components 1-4 between two draws) | decoder on k component scores: val R2 |",
        "|---|---|---|---|---|",
    ]
    for n_blocks in (8, 32, 128):
        for k in (4, 8, 16, 32):
            row = scores(counts, velocity, train_end, n_blocks, k, rng)
            lines.append(f"| {n_blocks} | {k} | {' / '.join(f'{c:.2f}' for c in row['cca'])} | "
                         f"{' / '.join(f'{c:+.2f}' for c in row['stability'])} | {row['ceiling']:.3f} |")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    print(text)
    return text


if __name__ == "__main__":
    main()
