"""Choose the demo's NDT1 EMA decay on validation (``spikefm.demo.demo_recipes``), never on test.

The EMA of the weights does not change the training trajectory, so one training run per step count (the demo's
quick 1,000 and full 3,000 steps) serves every candidate decay: the run trains without an EMA and keeps a
shadow average per decay with the settings ``spikefm.train.fit`` uses (parameters only, from the end of the
warm-up). Each candidate is scored by co-bps on synth-0's *validation* trials; the test trials are not read.

    OMP_NUM_THREADS=1 nice -n 5 python -m benchmarks.demo_ema_on_val --out benchmarks/results/demo_ema_on_val.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import EMAWeightAveraging

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.demo import demo_recipes
from spikefm.eval.evaluate import predict, score
from spikefm.eval.metrics import CO_BPS
from spikefm.models.registry import build_config, get_spec
from spikefm.train.config import RunConfig
from spikefm.train.fit import fit

DECAYS = (0.99, 0.999)  # and 0 (the raw weights)


class ShadowEMA(EMAWeightAveraging):
    """Keeps the EMA of the weights without ever putting it into the model (training and validation see the raw
    weights, exactly as in a run without an EMA)."""

    def __init__(self, label: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.decay = label

    @property
    def state_key(self) -> str:  # one per decay, so several shadows can share a trainer (and its checkpoints)
        return self._generate_state_key(decay=self.decay)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        """Leaves the raw weights in place for validation."""

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        """Nothing was swapped in, so nothing is swapped back."""

    def on_train_end(self, trainer, pl_module) -> None:
        """The average stays in the shadow; :func:`averaged` copies it out."""

    def averaged(self, module: torch.nn.Module) -> torch.nn.Module:
        """A copy of ``module`` holding this shadow's averaged parameters."""
        copied = copy.deepcopy(module)
        self._copy_average_to_current(copied)
        return copied


def val_co_bps(module: torch.nn.Module, config: RunConfig, recording) -> float:
    spec = get_spec(config.model.name)
    tokenizer = spec.make_tokenizer(build_config(config.model.name, config.model.preset, **config.model.overrides))
    return score(predict(module.model, tokenizer, recording, split="val", window=config.data.window,
                         pack=spec.pack))[CO_BPS]


def one_step_count(quick: bool, dataset, workdir: Path, steps: int | None = None) -> dict[str, Any]:
    override = {"ndt1": steps, "poyo": steps} if steps else None
    raw = demo_recipes(workdir, quick=quick, steps=override, progress=False, threads=1)["ndt1"]
    raw["trainer"]["ema_decay"] = 0.0  # the shadows below average; the run itself trains the raw weights
    config = RunConfig.from_dict(raw)
    cfg = config.trainer
    shadows = {d: ShadowEMA(d, decay=d, use_buffers=False, update_starting_at_step=min(cfg.warmup_steps,
                                                                                    cfg.max_steps - 1))
               for d in DECAYS}
    recordings = [r for r in dataset.recordings if r.session in config.data.sessions]
    start = time.process_time()
    result = fit(config, recordings=recordings, dataset=dataset, callbacks=list(shadows.values()))
    (rec,) = recordings
    scores = {"0": val_co_bps(result.module, config, rec)}
    scores |= {str(d): val_co_bps(s.averaged(result.module), config, rec) for d, s in shadows.items()}
    return {"steps": cfg.max_steps, "val_co_bps": scores, "chosen": max(scores, key=scores.get),
            "cpu_minutes": round((time.process_time() - start) / 60, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/demo_ema_on_val.json"))
    parser.add_argument("--steps", type=int, default=None, help="smoke test: this many steps for both runs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = generate(SyntheticConfig(seed=0))
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        results = {("quick" if quick else "full"): one_step_count(quick, dataset, Path(tmp), args.steps)
                   for quick in (True, False)}
    payload = {"results": results, "wall_minutes": round((time.perf_counter() - wall) / 60, 2),
               "load_after": os.getloadavg(), "cpu": platform.processor() or platform.machine(),
               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "data": "synth-0 of the demo's SyntheticConfig(seed=0): val trials (10 of 100)"}
    args.out.write_text(json.dumps(payload, indent=2))
    print(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
