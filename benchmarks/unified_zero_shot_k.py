"""Zero-shot decode R2 of the unified model on one transfer world's new session against k calibration trials, with
the registered triggered-state norms (issue 16; the thirty-second sitting's diagnosis).

Pretrains the recipe on the world's other sessions (the transfer protocol's fixed pretraining, seed 0), then for each
k calibrates on the new session's first k train trials and scores its **val** trials: the test split is never
opened (:func:`spikefm.eval.sealed.seal`). A diagnosis, not a protocol result.

    OMP_NUM_THREADS=2 python benchmarks/unified_zero_shot_k.py --world 23003 --ks 8 16 32
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse

import torch

from spikefm.eval.sealed import seal
from spikefm.eval.transfer_candidate import (
    Pretraining,
    TransferCandidate,
    TransferWorld,
    _rows_at,
    transfer_task,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, required=True, help="the transfer world's seed")
    parser.add_argument("--ks", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    pretrain, target = TransferWorld().draw(args.world)
    dev, _ = seal(target, name=target.session)  # train and val only
    print("| k | val decode R2 | triggered-state norm per unit, input (mean / max) | readout (mean / max) |")
    print("|---|---|---|---|")
    for k in args.ks:
        candidate = TransferCandidate("unified", "zero_shot", k, transfer_task(), {dev.session: pretrain},
                                      pretraining=Pretraining())
        fitted = candidate.fit(dev, {}, args.seed)  # the pretrained model is shared across k (one process)
        model = fitted["model"]
        model.forget(dev.session)
        model.calibrate(dev, _rows_at(dev, fitted["starts"]))
        norms = {name: torch.stack(list(model._registered_features(name, dev.session).values())).norm(dim=-1)
                 for name in ("input_features", "features")}
        r2 = float(candidate.validate(fitted, dev))
        print(f"| {k} | {r2:.3f} | " + " | ".join(f"{n.mean():.2f} / {n.max():.2f}" for n in
                                                     (norms["input_features"], norms["features"])) + " |")


if __name__ == "__main__":
    main()
