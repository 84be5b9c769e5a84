"""Validation probe (issue 16): one pass (IDEncoder identities) vs two passes (``triggered_input``) in zero-shot.

Transfer world 0 (``TransferWorld().draw(0)``, the world every transfer sitting selects on), the fixed pretraining
recipe (1,000 steps on its 4 sessions), no gradient step on the scored session: identities from its first k train
trials, decode R2 on its **val** trials (test trials sealed). Scored on the new session and on a pretraining session.
One process per (variant, seed); rows are appended to the results JSON:

    python benchmarks/unified_identity_passes.py --variant one_pass --seed 0
    python benchmarks/unified_identity_passes.py --variant two_pass --seed 0
    python benchmarks/unified_identity_passes.py --render   # the table from the saved rows

About 5.5 CPU-minutes per process (2-core AMD EPYC, one thread). Result: docs/results/protocol.md, twenty-seventh
sitting's declaration.
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

RESULTS = Path(__file__).parent / "results" / "unified_identity_passes.json"
VARIANTS = {"one_pass": False, "two_pass": True}  # triggered_input
KS = (8, 32)


def score(variant: str, seed: int) -> dict:
    from spikefm.eval.sealed import seal
    from spikefm.eval.transfer_candidate import TransferCandidate, TransferWorld, transfer_task

    torch.set_num_threads(1)
    sources, target = TransferWorld().draw(0)
    row: dict = {"variant": variant, "seed": seed}
    t0 = time.process_time()
    for label, recording in (("new session", target), ("pretraining session", sources[0])):
        dev, _ = seal(recording)  # the test trials never reach this script
        for k in KS:
            candidate = TransferCandidate(model="unified", condition="zero_shot", k=k, task=transfer_task(),
                                          sources={recording.session: sources},
                                          overrides={"triggered_input": VARIANTS[variant]})
            row[f"{label}, k = {k}"] = candidate.validate(candidate.fit(dev, {}, seed), dev)
    row["cpu_s"] = time.process_time() - t0
    return row


def render(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if "k = " in k]
    lines = ["| val decode R2 | " + " | ".join(VARIANTS) + " | difference per seed |", "|---|---|---|---|"]
    for key in keys:
        cells, per = [], {}
        for variant in VARIANTS:
            values = {r["seed"]: r[key] for r in rows if r["variant"] == variant}
            per[variant] = values
            mean = np.mean(list(values.values()))
            cells.append(" / ".join(f"{values[s]:.3f}" for s in sorted(values)) + f" (mean {mean:.3f})")
        seeds = sorted(set(per["one_pass"]) & set(per["two_pass"]))
        diff = " / ".join(f"{per['two_pass'][s] - per['one_pass'][s]:+.3f}" for s in seeds)
        lines.append(f"| {key} | " + " | ".join(cells) + f" | {diff} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=sorted(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--render", action="store_true", help="print the table of the saved rows")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rows = json.loads(args.results.read_text()) if args.results.exists() else []
    if args.render:
        print(render(rows))
        return
    if args.variant is None:
        parser.error("--variant is required unless --render")
    row = score(args.variant, args.seed)
    rows = [r for r in rows if (r["variant"], r["seed"]) != (args.variant, args.seed)] + [row]
    args.results.write_text(json.dumps(rows, indent=1))
    print(row)


if __name__ == "__main__":
    main(sys.argv[1:])
