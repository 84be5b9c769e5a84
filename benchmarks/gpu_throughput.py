"""Training throughput on one GPU: tokens/s and model FLOPs utilisation (MFU), bf16 autocast.

For each model (default: POYO at its published size ``poyo_11.8m``, read padded; POSSM ``tiny``
read packed, the varlen route for variable-length spike sequences; the unified model at its published-size preset
``unified_possm``, 6.2M parameters, packed) the script builds synthetic
sessions, tokenizes ``--batch-size`` 1 s windows, and times ``--steps`` full training steps
(forward, objective, backward, AdamW) after ``--warmup`` steps, under
``torch.autocast(device, dtype=bfloat16)``. It reports:

* input tokens/s: valid (unpadded) input tokens of the batch per second of step time;
* model FLOPs per step, counted once by ``torch.utils.flop_counter.FlopCounterMode`` over one
  forward + backward (matmuls and attention; elementwise ops are not counted, so MFU is a floor);
* MFU = FLOPs per step / step time / the device's peak dense bf16 FLOP/s (``--peak-tflops``, or
  the table below for known devices);
* the padding fraction of the padded batch, peak GPU memory, the SDPA backends enabled, the hardware.

One command on a machine with a GPU (results as JSON on stdout and in ``--out``):

    python benchmarks/gpu_throughput.py --out benchmarks/results/gpu_throughput.json

Without a GPU, ``--dry-run`` runs the same code on the CPU with tiny presets and 2 steps (a
check that the script works, not a measurement; MFU is then against a nominal 1 TFLOP/s).
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
import platform
import time
from pathlib import Path
from typing import Any, Sequence

# Peak dense bf16 tensor-core FLOP/s (vendor data sheets, no sparsity), matched on the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0, "L4": 121.0,
               "RTX 4090": 165.0, "V100": 125.0}


def _peak_tflops(device_name: str, override: float | None) -> float | None:
    if override:
        return override
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)


def _batch(name: str, preset: str, batch_size: int, seed: int):
    import torch

    from spikefm.data.synthetic import SyntheticConfig, generate
    from spikefm.models.registry import build_config, get_spec
    from spikefm.tokenize.base import collate

    spec = get_spec(name)
    config = build_config(name, preset)
    dataset = generate(SyntheticConfig(n_sessions=2, n_trials=max(8, batch_size // 2 + 1), seed=seed,
                                       units_per_session=(80, 120)))
    tokenizer = spec.make_tokenizer(config)
    starts = [(r, float(t)) for r in dataset.recordings for t in r.trials.start]
    windows = [tokenizer(rec.window(t, t + 1.0)) for rec, t in starts[:batch_size]]
    torch.manual_seed(seed)
    model = spec.model_cls(config, **spec.sizes_from_data(dataset.recordings, config))
    return spec, model, collate(windows, pack=spec.pack)


def measure(name: str, preset: str, *, device: str, batch_size: int, steps: int, warmup: int,
            peak_tflops: float | None, seed: int = 0) -> dict[str, Any]:
    """Time training steps of one model; returns the record."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    spec, model, batch = _batch(name, preset, batch_size, seed)
    model.to(device).train()
    batch = batch.to(device, non_blocking=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device_type="cuda" if device.startswith("cuda") else "cpu", dtype=torch.bfloat16)

    def step() -> None:
        with autocast:
            loss, _ = spec.objective(model(batch), batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with FlopCounterMode(display=False) as counter:
        with autocast:
            loss, _ = spec.objective(model(batch), batch)
        loss.backward()
    flops = float(counter.get_total_flops())
    optimizer.zero_grad(set_to_none=True)
    for _ in range(warmup):
        step()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - start) / steps
    mask = batch.mask
    valid = int(mask.sum())
    padded = int(mask.numel())
    peak = _peak_tflops(torch.cuda.get_device_name() if device.startswith("cuda") else "", peak_tflops)
    return {
        "model": name, "preset": preset, "packed": spec.pack, "batch_size": batch_size,
        "parameters": sum(p.numel() for p in model.parameters()), "valid_tokens": valid,
        "padding_fraction": 0.0 if spec.pack else round(1 - valid / padded, 4),
        "step_s": seconds, "tokens_per_s": valid / seconds, "flops_per_step": flops,
        "achieved_tflops": flops / seconds / 1e12, "peak_tflops": peak,
        "mfu": flops / seconds / (peak * 1e12) if peak else None,
        "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None,
    }


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["poyo:poyo_11.8m", "possm:tiny", "unified:unified_possm"],
                        help="name:preset pairs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's peak dense bf16 TFLOP/s")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny presets, 2 steps: check the script runs")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    if args.dry_run:
        device, models, batch, steps, warmup, peak = "cpu", ["poyo:tiny", "possm:tiny", "unified:tiny"], 4, 2, 1, 1.0
        torch.set_num_threads(1)
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device: run on a GPU machine, or use --dry-run to check the script on CPU")
        device, models, batch, steps, warmup, peak = "cuda", args.models, args.batch_size, args.steps, args.warmup, \
            args.peak_tflops
        torch.backends.cuda.matmul.allow_tf32 = True
    records = []
    for item in models:
        name, _, preset = item.partition(":")
        record = measure(name, preset or "tiny", device=device, batch_size=batch, steps=steps, warmup=warmup,
                         peak_tflops=peak)
        records.append(record)
        print(json.dumps(record), flush=True)
    hardware = {
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "cuda": torch.version.cuda, "dry_run": args.dry_run,
        "sdpa_flash": torch.backends.cuda.flash_sdp_enabled(),
        "sdpa_mem_efficient": torch.backends.cuda.mem_efficient_sdp_enabled(),
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"hardware": hardware, "records": records}, indent=2))
    return records


if __name__ == "__main__":
    main()
