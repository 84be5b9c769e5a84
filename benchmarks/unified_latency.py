"""Streaming cost per 50 ms chunk on one CPU thread: unified vs POSSM, at 200 and 1,000 units.

Both models at their ``tiny`` presets with random weights (latency does not depend on training),
stepped by :class:`spikefm.realtime.StreamingDecoder` through homogeneous Poisson spikes at 15 Hz
per unit (``benchmarks/possm_latency.py``'s stream and timer). The unified model is calibrated on
8 s of the same stream first (its identities are computed once per stream, not per chunk).
Median and 95th percentile over the timed chunks of the best of ``--repeats`` passes.

    OMP_NUM_THREADS=1 python benchmarks/unified_latency.py --duration 20
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/tokenize.py would shadow the standard library's tokenize

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

from spikefm.models.registry import build_config, get_spec

_spec = importlib.util.spec_from_file_location("possm_latency", Path(__file__).with_name("possm_latency.py"))
possm_latency = importlib.util.module_from_spec(_spec)
sys.modules["possm_latency"] = possm_latency  # its dataclasses look their module up
_spec.loader.exec_module(possm_latency)


# The unified model's ablations timed beside it (issue 16): binned input and a windowed transformer core.
ABLATIONS = {"": {}, " [input_bin=0.05]": {"input_bin": 0.05}, " [core=transformer]": {"core": "transformer"}}


def build(name: str, recording, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    config = build_config(name, "tiny", **overrides)
    if name == "possm":
        sizes = {"unit_keys": recording.unit_keys(), "sessions": [recording.session], "behavior_dim": 2}
    else:
        sizes = {"behavior_dims": {"hand_vel": 2}}
    model = get_spec(name).model_cls(config, **sizes).eval()
    if name == "unified":
        model.calibrate(recording, starts=np.arange(8.0))
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("| model | units | median ms / chunk | p95 ms | spikes / chunk |")
    print("|---|---|---|---|---|")
    for n_units in (200, 1000):
        recording = possm_latency.make_recording(n_units, 15.0, args.duration, seed=0)
        rows = [("possm", "", {})] + [("unified", label, o) for label, o in ABLATIONS.items()]
        for name, label, overrides in rows:
            model = build(name, recording, **overrides)
            passes = [possm_latency.time_stream(model, recording, warmup=20) for _ in range(args.repeats)]
            best = min(passes, key=np.median)
            per_chunk = len(recording.spikes.times) / (args.duration / model.config.chunk)
            print(f"| {name}{label} | {n_units} | {np.median(best):.3f} | {np.percentile(best, 95):.3f} | "
                  f"{per_chunk:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
