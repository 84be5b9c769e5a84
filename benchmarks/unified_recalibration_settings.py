"""Validation probe (issue 16): the unified model's within-session recalibration settings (lr, steps).

The Lorenz development draw (lorenz-0, the draw every synthetic-lorenz sitting selects on), the recipe's row trained
600 steps at the trainer's default settings, then its identity offsets recalibrated on the train trials
(:class:`spikefm.eval.recalibrated_candidate.RecalibratedCandidate`) at each setting, on copies of the one trained
model. Decode R2 (or co-bps) on the draw's **val** trials (test trials sealed). One process per seed:

    OMP_NUM_THREADS=1 python benchmarks/unified_recalibration_settings.py --seed 0

About 7 CPU-minutes per seed (2-core AMD EPYC, one thread). Recorded 2026-12-05 (val decode R2, seeds 0 / 1):
no recalibration 0.854 / 0.862; lr 1e-2, 200 steps (the transfer protocol's default) 0.873 / 0.864; 3e-2, 200
0.876 / 0.859; 3e-2, 600 0.869 / 0.873; 0.1, 400 0.881 / 0.875; 3e-3, 600 0.883 / 0.871. Chosen: lr 0.1, 400 steps
(best mean). Used by the forty-fourth sitting (docs/results/protocol.md).

Co-smoothing (``--task co-bps``, held-out units' co-bps in 50 ms chunks on the val trials, seed 0, same day): no
recalibration 0.144; lr 0.1, 400 steps 0.170; 1e-2, 200 0.164; 3e-3, 600 0.162; 0.1, 1000 0.170; 0.3, 400 0.169.
The decoding choice (0.1, 400) is also the best here; used by the forty-fifth sitting.

M1 (``--data ../shared/data/m1_reaching/m1_stevenson_2011.mat --steps 1200 --settings 0.1:400``, 1 s blocks, val
blocks, seed 0, 2026-12-06, validation only): the label-free recipe 0.010 -> 0.187 with the second mode (offsets
cannot rescue a network trained on identities that carry no tuning there); with ``--overrides population_pcs=32``
0.794 -> 0.808. POSSM's validation score in the fortieth sitting was 0.781. About 33 CPU-minutes per variant.
The forty-sixth sitting scored that row (``unified:decode:population:recalibrated``) against POSSM on M1's test
blocks: 0.742 vs 0.758, level (docs/results/protocol.md).
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
    from spikefm.eval.metrics import CO_BPS, DECODE_R2
    from spikefm.eval.model_candidate import ModelCandidate
    from spikefm.eval.recalibrated_candidate import RecalibratedCandidate, RecalibratedUnitRateCandidate
    from spikefm.eval.unit_rate_candidate import UnitRateCandidate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=600, help="training steps of the recipe's row")
    parser.add_argument("--task", choices=("decode", "co-bps"), default="decode",
                        help="decode R2, or co-bps of the held-out units in 50 ms chunks")
    parser.add_argument("--settings", default="", help="lr:steps,... (default: the recorded grid)")
    parser.add_argument("--data", default="", help="a recording file to decode instead (1 s blocks, its val blocks)")
    parser.add_argument("--behavior", default="hand_vel")
    parser.add_argument("--overrides", default="", help="model config overrides, e.g. population_pcs=32")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides = {k: int(v) if v.isdigit() else v for k, v in (x.split("=") for x in args.overrides.split(",") if x)}
    settings = ([(float(x.split(":")[0]), int(x.split(":")[1])) for x in args.settings.split(",")]
                if args.settings else SETTINGS)
    if args.data:  # as `spikefm bench --data FILE --behavior KEY` prepares it (decoding)
        from pathlib import Path

        from spikefm.data.store import load
        from spikefm.eval.bench import _decoding_data

        rec, task, _ = _decoding_data(load(args.data), Path(args.data), args.behavior, 1.0, None)
    else:
        rec = SyntheticSettings(system="lorenz").draw(0)
        task = (Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel") if args.task == "decode"
                else Task(CO_BPS, window=1.0, bin_size=0.05))
    base, recalibrated = ((UnitRateCandidate, RecalibratedUnitRateCandidate) if task.metric == CO_BPS
                          else (ModelCandidate, RecalibratedCandidate))
    recipe = base("unified", task, max_steps=args.steps, overrides=overrides)
    start = time.time()
    trained = recipe.fit(rec, recipe.default(), args.seed)
    print(f"seed {args.seed}: no recalibration, val {task.metric} {recipe.validate(trained, rec):.4f} "
          f"({time.time() - start:.0f} s)", flush=True)

    for lr, steps in settings:  # each on a copy of the one trained model
        row = recalibrated("unified", task, max_steps=args.steps, recalibrate_lr=lr, recalibrate_steps=steps,
                           overrides=overrides)
        fitted = row.recalibrate({**trained, "model": copy.deepcopy(trained["model"])}, rec, args.seed)
        print(f"seed {args.seed}: lr {lr:g}, {steps} steps, val {task.metric} {row.validate(fitted, rec):.4f} "
              f"({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
