"""Multi-process training that really runs: Lightning DDP (gloo on CPU) vs one process, same global batch.

Trains a tiny POYO (dropout off, so both runs draw no random numbers in the step) with
``fit()`` on ``--devices`` processes, ``--batch-size`` windows per process, and records, on rank 0,
the loss of every step averaged over ranks (the loss of the global batch) and the tokens per
second of the whole job (tokens summed over ranks, wall time from the end of step 1 to the end of
the last step). With the spikefm samplers (rank r takes windows r, r + W, ... of the epoch's
list), 2 processes x B windows see the same windows per step as 1 process x 2B, so the two loss
trajectories must agree up to floating-point reduction order. Writes one JSON object:

    python benchmarks/ddp_scaling.py --devices 1 --batch-size 16 --out runs/ddp1.json
    python benchmarks/ddp_scaling.py --devices 2 --batch-size 8 --out runs/ddp2.json

Lightning's DDP launcher re-runs this script for rank 1, so it must be run as a file (as above).
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
import time
from pathlib import Path

import lightning as L
import torch


class TrajectoryRecorder(L.Callback):
    """Global-batch loss per step (mean over ranks) and tokens over all ranks, kept on rank 0."""

    def __init__(self) -> None:
        self.losses: list[float] = []
        self.tokens: list[float] = []
        self.times: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"].detach() if isinstance(outputs, dict) else outputs.detach()
        tokens = torch.tensor(float(batch.mask.sum()))
        loss = trainer.strategy.reduce(loss, reduce_op="mean")
        tokens = trainer.strategy.reduce(tokens, reduce_op="sum")
        self.losses.append(float(loss))
        self.tokens.append(float(tokens))
        self.times.append(time.perf_counter())


def run(devices: int, batch_size: int, steps: int, sessions: int, trials: int, out_dir: str, seed: int = 0) -> dict:
    """Train and return the record (rank 0) or an empty dict (other ranks)."""
    from spikefm.train.config import RunConfig
    from spikefm.train.fit import fit

    torch.set_num_threads(1)
    config = RunConfig.from_dict({
        "name": f"ddp{devices}",
        "model": {"name": "poyo", "overrides": {"dropout": 0.0, "lin_dropout": 0.0, "unit_dropout": False}},
        "data": {"synthetic": {"n_sessions": sessions, "units_per_session": [20, 30], "n_trials": trials}},
        "trainer": {"max_steps": steps, "batch_size": batch_size, "lr": 1e-3, "warmup_steps": 1, "seed": seed,
                    "val_every": 10_000, "accelerator": "cpu", "devices": devices,
                    "strategy": "ddp" if devices > 1 else "auto", "out_dir": out_dir, "progress": False},
    })
    recorder = TrajectoryRecorder()
    fit(config, callbacks=[recorder])
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:
        return {}
    seconds = recorder.times[-1] - recorder.times[0]
    return {
        "devices": devices, "batch_per_process": batch_size, "global_batch": batch_size * devices, "steps": steps,
        "losses": recorder.losses, "tokens_per_s": sum(recorder.tokens[1:]) / seconds if seconds > 0 else None,
        "seconds_steps_2_to_n": seconds, "load_average": os.getloadavg(), "cpus": os.cpu_count(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="windows per process")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    record = run(args.devices, args.batch_size, args.steps, args.sessions, args.trials, str(args.out.parent / "runs"))
    if record:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=2))
        print(json.dumps({k: v for k, v in record.items() if k != "losses"}))


if __name__ == "__main__":
    main()
