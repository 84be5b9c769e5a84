"""Validation probe (issue 16): the unified model's within-session recalibration settings (lr, steps).

The Lorenz development draw (lorenz-0, the draw every synthetic-lorenz sitting selects on), the recipe's row trained
600 steps at the trainer's default settings, then its identity offsets recalibrated on the train trials
(:class:`spikefm.eval.recalibrated_candidate.RecalibratedCandidate`) at each setting, on copies of the one trained
model. Decode R2 on the draw's **val** trials (test trials sealed). One process per seed:

    OMP_NUM_THREADS=1 python benchmarks/unified_recalibration_settings.py --seed 0

About 7 CPU-minutes per seed (2-core AMD EPYC, one thread). Recorded 2026-12-05 (val decode R2, seeds 0 / 1):
no recalibration 0.854 / 0.862; lr 1e-2, 200 steps (the transfer protocol's default) 0.873 / 0.864; 3e-2, 200
0.876 / 0.859; 3e-2, 600 0.869 / 0.873; 0.1, 400 0.881 / 0.875; 3e-3, 600 0.883 / 0.871. Chosen: lr 0.1, 400 steps
(best mean). Used by the forty-fourth sitting (docs/results/protocol.md).
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse
import copy
import time

import torch

SETTINGS = ((1e-2, 200), (3e-2, 200), (3e-2, 600), (1e-1, 400), (3e-3, 600))


def main() -> None:
    from spikefm.eval.bench import SyntheticSettings
    from spikefm.eval.candidates import Task
    from spikefm.eval.metrics import DECODE_R2
    from spikefm.eval.model_candidate import ModelCandidate
    from spikefm.eval.recalibrated_candidate import RecalibratedCandidate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600, help="training steps of the recipe's row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rec = SyntheticSettings(system="lorenz").draw(0)
    task = Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel")
    recipe = ModelCandidate("unified", task, max_steps=args.steps)
    start = time.time()
    trained = recipe.fit(rec, recipe.default(), args.seed)
    print(f"seed {args.seed}: no recalibration, val decode R2 {recipe.validate(trained, rec):.4f} "
          f"({time.time() - start:.0f} s)", flush=True)

    for lr, steps in SETTINGS:  # each on a copy of the one trained model
        row = RecalibratedCandidate("unified", task, max_steps=args.steps, recalibrate_lr=lr, recalibrate_steps=steps)
        fitted = row.recalibrate({**trained, "model": copy.deepcopy(trained["model"])}, rec, args.seed)
        print(f"seed {args.seed}: lr {lr:g}, {steps} steps, val decode R2 {row.validate(fitted, rec):.4f} "
              f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
