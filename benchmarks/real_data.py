"""The real-data score table: every number in ``benchmarks/results/real_data.md``, regenerated on CPU.

Three tasks on the recordings in ``../shared/data`` (see its README):

* **M1 reaching** (Stevenson 2011, 50 ms binned counts): 2-D hand-velocity decoding R2 on the
  last 20% of the session (a contiguous block; 70% train, 10% val before it). Wiener filter
  (ridge on a causal spike history, lags picked on val; also a version that reads 500 ms of
  future spikes, the reference for models that see their whole window) vs NDT1 (self-supervised
  rates -> the same Wiener filter; the NLB same-bin ridge beside it) vs per-spike decoders (POYO,
  POSSM, SPINT) reading the quantised spike times (POSSM, causal, also reads the Wiener filter's
  history before each test block).
* **Hippocampus** (rat, W-maze and linear track of the same animal, exact spike times):
  2-D position decoding on moving blocks of each session (Wiener filter, place-field Bayesian
  decoder), then ``transfer``: per-spike decoders (POYO, POSSM, SPINT) pretrained on the W-maze
  and moved to the linear track with :mod:`spikefm.eval.transfer` (zero-shot / recalibrate /
  finetune / scratch); its ``within`` row is their W-maze position decoding.
* **MC_Maze_Small** (NLB test file, 100 trials): co-smoothing inside the file with a seeded 25%
  of units held out and a seeded 70/10/20 trial split; smoothing baseline vs NDT1, STNDT, MtM.

Run ``python benchmarks/real_data.py`` (``--quick`` for a smoke run, ``--tasks m1,mc_maze`` for
a subset; ``SPIKEFM_REAL_DATA=/path/to/shared/data`` when the repository is not beside it).
Behaviour is z-scored with training-split statistics before any decoder sees it,
so R2 is comparable across models (variance-weighted R2 on z-scored dims ~ their mean R2).
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize when run as a script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from types import SimpleNamespace  # noqa: E402
from typing import Any, Callable  # noqa: E402

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy: multi-threaded BLAS busy-waits on a shared CPU

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikefm.data.recording import Recording  # noqa: E402
from spikefm.data.splits import (  # noqa: E402
    contiguous_blocks, hold_out_units, merge_split_runs, ordered_trial_splits, shuffle_trial_splits,
)
from spikefm.data.store import load  # noqa: E402
from spikefm.eval.blocks import select_wiener, span_counts, zscore_behaviour  # noqa: E402
from spikefm.eval.evaluate import predict, score  # noqa: E402
from spikefm.eval.metrics import decoder_metric, decoding_r2, velocity_r2  # noqa: E402
from spikefm.eval.trials import trial_arrays  # noqa: E402

DATA = Path(os.environ.get("SPIKEFM_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"
SEED = 0
WIENER_LAGS = (1, 5, 10, 15, 20)  # bins of causal history tried on val
WIENER_ALPHAS = np.logspace(-2, 6, 17)


M1_TRAINER = {"possm": {"ema_decay": 0.999}}  # trainer overrides per M1 decoder
# NDT1 on M1: wider and less dropout than the tiny preset, whose heavy regularisation is sized for
# 70 synthetic trials (M1 has ~540 s of training data); the tiny preset's rates lose velocity
# information here (Wiener on its rates 0.646 vs 0.790 with these settings).
M1_NDT1 = {"dim": 256, "ffn_dim": 512, "dropout": 0.1, "dropout_embedding": 0.1, "dropout_rates": 0.1}


# ----------------------------------------------------------------------------- settings
@dataclass
class Budget:
    """Optimizer steps per model; ``quick`` shrinks everything to a smoke run."""

    m1_steps: dict[str, int]
    hippo: dict[str, int]
    maze_steps: dict[str, int]

    @classmethod
    def make(cls, quick: bool) -> "Budget":
        if quick:
            return cls({"ndt1": 3, "poyo": 3, "possm": 3, "spint": 3},
                       {"pretrain": 3, "adapt": 2, "scratch": 2, "k": [8, 16]},
                       {"ndt1": 3, "stndt": 3, "mtm": 3})
        # POSSM: 3,000 steps with an EMA of the weights (M1_TRAINER); at 1,500 plain steps it scored 0.751
        # with the same context (docs/results/real_data.md).
        return cls({"ndt1": 1500, "poyo": 1500, "possm": 3000, "spint": 1500},
                   {"pretrain": 1000, "adapt": 150, "scratch": 400, "k": [32, 256]},
                   {"ndt1": 1200, "stndt": 1200, "mtm": 1200})


def environment() -> dict[str, Any]:
    import lightning

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
            "lightning": lightning.__version__, "python": platform.python_version(),
            "torch_threads": torch.get_num_threads(), "seed": SEED}


# ----------------------------------------------------------------------------- shared helpers
def train_model(name: str, rec_train: Recording, *, steps: int, window: float, out: Path, sampler: str,
                overrides: dict | None = None, batch_size: int = 16, lr: float = 2e-3,
                trainer: dict | None = None) -> Any:
    """Train registered model ``name`` on ``rec_train``'s train split with ``spikefm.train.fit``."""
    from spikefm.train.config import RunConfig
    from spikefm.train.fit import fit

    config = RunConfig.from_dict({
        "name": name, "model": {"name": name, "preset": "tiny", "overrides": overrides or {}},
        "data": {"window": window, "sampler": sampler, "windows_per_epoch": 512},
        "trainer": {"max_steps": steps, "batch_size": batch_size, "lr": lr, "warmup_steps": min(100, steps),
                    "val_every": steps, "seed": SEED, "out_dir": str(out), "progress": False, **(trainer or {})},
    })
    return fit(config, recordings=[rec_train]), config


def tokenizer_of(config) -> tuple[Callable, bool]:
    from spikefm.models.registry import build_config, get_spec

    spec = get_spec(config.model.name)
    return spec.make_tokenizer(build_config(config.model.name, "tiny", **config.model.overrides)), spec.pack


def timed(rows: dict, name: str, run: Callable[[], dict[str, float]]) -> None:
    """``rows[name] = run()`` plus its wall time; a failure is recorded as the error, not hidden."""
    start = time.perf_counter()
    try:
        rows[name] = run()
    except Exception as error:  # noqa: BLE001 - the table reports which model could not run and why
        rows[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
    rows[name]["seconds"] = round(time.perf_counter() - start, 1)
    print(f"  {name}: {rows[name]}", flush=True)


def wiener(train_counts, train_y, val_counts, val_y, test_counts, test_y) -> dict[str, float]:
    """Wiener filter (:func:`spikefm.eval.blocks.select_wiener`: lags and alpha chosen on val), scored on test."""
    chosen = select_wiener(train_counts, train_y, val_counts, val_y, lags=WIENER_LAGS, alphas=WIENER_ALPHAS)
    test = chosen.predict(test_counts)
    return {"R2": decoding_r2(test, np.reshape(test_y, (-1, test_y.shape[-1]))), "lags": chosen.lags,
            "alpha": chosen.alpha}


# ----------------------------------------------------------------------------- M1 reaching
def m1_recording() -> tuple[Recording, Recording]:
    """(recording with 1 s blocks labelled in time order, same with merged split runs for training)."""
    rec = contiguous_blocks(load(DATA / "m1_reaching" / "m1_stevenson_2011.mat"), block=1.0)
    train_end = rec.trials.end[rec.trials.columns["split"] == "train"].max()
    rec = zscore_behaviour(rec, "hand_vel", slice(0, 2), train_end)  # third row of handVel is all zeros
    return rec, merge_split_runs(rec)


def m1_ndt1(rec: Recording, rec_train: Recording, steps: int, out: Path) -> dict[str, float]:
    """NDT1's rates on the 1 s blocks, decoded by the NLB ridge readout (same bin) and by the
    Wiener filter of the baseline (lags and alpha chosen on val), the main number."""
    result, config = train_model("ndt1", rec_train, steps=steps, window=1.0, out=out, sampler="random",
                                 overrides={"bin_size": rec.bin_size, "max_bins": 64, **M1_NDT1})
    tokenizer, pack = tokenizer_of(config)
    splits = ("train", "val", "test")
    rates = {s: predict(result.module.model, tokenizer, rec, split=s, window=1.0, pack=pack).rates for s in splits}
    vel = {s: trial_arrays(rec, split=s, bin_size=rec.bin_size, window=1.0, behavior_key="hand_vel").behavior
           for s in splits}
    flat = {s: (rates[s].reshape(-1, rec.n_units), vel[s].reshape(-1, vel[s].shape[-1])) for s in splits}
    wiener_on_rates = wiener(*flat["train"], *flat["val"], *flat["test"])  # back-to-back blocks: one stretch
    return {"R2": wiener_on_rates["R2"], "lags": wiener_on_rates["lags"],
            "vel R2 (NLB ridge from rates)": velocity_r2(rates["train"], vel["train"], rates["test"], vel["test"])}


def wiener_with_future(spans: list[tuple[np.ndarray, np.ndarray]], lead: int = 10) -> dict[str, float]:
    """The Wiener filter reading ``lead`` bins after the decoded bin as well (acausal): the fair
    reference for models that see their whole window (POYO, NDT1)."""
    shifted = [(np.concatenate([counts[lead:], np.zeros((lead, counts.shape[1]))]), y) for counts, y in spans]
    return {**wiener(*shifted[0], *shifted[1], *shifted[2]), "lead bins": lead}


def decoder_r2(name: str, rec: Recording, rec_train: Recording, steps: int, out: Path, key: str,
               window: float = 1.0, context: float = 0.0, trainer: dict | None = None) -> dict[str, float]:
    """Train a per-spike decoder on the train split and score it on the test blocks.

    ``context`` seconds of spikes before each block are read too (no labels; only the block's
    queries are scored), as a recurrent decoder streaming through the session would have them.
    """
    result, config = train_model(name, rec_train, steps=steps, window=window, out=out, sampler="random",
                                 overrides={"behavior_key": key}, trainer=trainer)
    tokenizer, pack = tokenizer_of(config)
    model = result.module.model
    if hasattr(model, "calibrate"):  # SPINT: identities from this session's training windows (no labels)
        model.calibrate(rec, np.flatnonzero(rec.trials.columns["split"] == "train")[:256].tolist())
    predictions = predict(model, tokenizer, rec, split="test", window=window + context, before=context, pack=pack)
    block = predictions.query_mask & (predictions.query_times >= context - 1e-9)  # the block's own queries
    samples = predictions.samples
    own = samples.times >= context - 1e-9  # scored at the block's own recorded samples only
    samples = replace(samples, trial=samples.trial[own], times=samples.times[own], values=samples.values[own])
    scores = score(replace(predictions, query_mask=block, samples=samples))
    return {"R2": scores[decoder_metric(key)], "context s": context}


def run_m1(budget: Budget, out: Path) -> dict[str, dict]:
    rec, rec_train = m1_recording()
    rows: dict[str, dict] = {}
    spans = [span_counts(rec, s, "hand_vel") for s in ("train", "val", "test")]
    timed(rows, "wiener", lambda: wiener(*spans[0], *spans[1], *spans[2]))
    timed(rows, "wiener_with_future", lambda: wiener_with_future(spans))
    timed(rows, "ndt1", lambda: m1_ndt1(rec, rec_train, budget.m1_steps["ndt1"], out / "m1"))
    history = rows["wiener"]["lags"] * rec.bin_size if "lags" in rows["wiener"] else 0.0  # chosen on val
    for name in ("poyo", "possm", "spint"):
        # POSSM (causal, recurrent) also reads the Wiener filter's history before each block; the
        # window models (POYO, SPINT) read their trained 1 s window, the block itself.
        context = history if name == "possm" else 0.0
        timed(rows, name, lambda name=name, context=context: decoder_r2(
            name, rec, rec_train, budget.m1_steps[name], out / "m1", "hand_vel", context=context,
            trainer=M1_TRAINER.get(name)))
    return rows


# ----------------------------------------------------------------------------- hippocampus
MIN_SPEED = 5.0  # px/s: blocks where the rat's tracked position moves at least this fast on average


def hippo_recording(folder: str) -> Recording:
    """A session with 1 s blocks over its tracked, spiking span, kept where the rat moves.

    About half of each session sits at one constant tracked position (the rat off the maze or the
    tracker parked on a marker); those blocks carry no position information and are left out.
    """
    rec = load(DATA / "hippocampus" / folder)
    position = rec.behavior["position"]
    t0 = max(rec.spikes.times[0], position.timestamps[0])
    t1 = min(rec.spikes.times[-1], position.timestamps[-1])
    rec = contiguous_blocks(rec, block=1.0, t0=t0, t1=t1)
    step = np.linalg.norm(np.diff(position.values, axis=0), axis=1)
    speed = np.r_[0.0, step / np.maximum(np.diff(position.timestamps), 1e-3)]  # one repeated video time stamp
    block = np.searchsorted(rec.trials.start, position.timestamps, side="right") - 1
    inside = (block >= 0) & (position.timestamps < rec.trials.end[np.clip(block, 0, None)])
    mean_speed = np.bincount(block[inside], speed[inside], len(rec.trials)) / np.maximum(
        np.bincount(block[inside], minlength=len(rec.trials)), 1)
    rec = ordered_trial_splits(replace(rec, trials=rec.trials.select(mean_speed >= MIN_SPEED)))
    train_end = rec.trials.end[rec.trials.columns["split"] == "train"].max()
    return zscore_behaviour(rec, "position", slice(0, 2), train_end)


def hippo_wiener(rec: Recording) -> dict[str, float]:
    arrays = [trial_arrays(rec, split=s, bin_size=0.05, window=1.0, behavior_key="position")
              for s in ("train", "val", "test")]
    return wiener(*[x for a in arrays for x in (a.counts, a.behavior)])


BAYES_BIN = 0.25  # s per decoded time bin
BAYES_GRID = 24  # spatial bins per axis over the training range (z-scored position)
BAYES_ERRORS = ("median px (MAP)", "median px (mean)", "median px (chance)")  # result keys, in table order


def hippo_bayes(rec: Recording) -> dict[str, float]:
    """The field's standard place-cell decoder: Poisson naive Bayes on smoothed 2-D rate maps.

    Rate maps (spikes / occupancy per spatial bin, Gaussian-smoothed by one bin) come from the
    train blocks; each 250 ms test bin is decoded to the posterior-mean position (uniform prior
    over visited bins), scored by R2. The field's usual score is reported too: the median
    distance in pixels between the true position and the posterior mode (MAP) or mean, and the
    same for a decoder that always says the training blocks' mean position (chance).
    """
    from scipy.ndimage import gaussian_filter

    per = int(round(1.0 / BAYES_BIN))
    arrays = {s: trial_arrays(rec, split=s, bin_size=BAYES_BIN, window=per * BAYES_BIN, behavior_key="position")
              for s in ("train", "test")}
    counts = arrays["train"].counts.reshape(-1, rec.n_units)
    pos = arrays["train"].behavior.reshape(-1, 2)
    edges = [np.linspace(pos[:, d].min(), pos[:, d].max() + 1e-9, BAYES_GRID + 1) for d in range(2)]
    cell = np.stack([np.clip(np.digitize(pos[:, d], edges[d]) - 1, 0, BAYES_GRID - 1) for d in range(2)], -1)
    flat = cell[:, 0] * BAYES_GRID + cell[:, 1]
    occupancy = np.bincount(flat, minlength=BAYES_GRID**2) * BAYES_BIN  # seconds per spatial bin
    spikes = np.stack([np.bincount(flat, counts[:, n], BAYES_GRID**2) for n in range(rec.n_units)], -1)
    def smooth(a: np.ndarray) -> np.ndarray:  # one spatial bin of Gaussian smoothing, per unit
        return gaussian_filter(a.reshape(BAYES_GRID, BAYES_GRID, -1), (1, 1, 0)).reshape(BAYES_GRID**2, -1)

    visited = occupancy > 0
    rates = smooth(spikes)[visited] / np.maximum(smooth(occupancy[:, None])[visited], 1e-9) + 1e-3  # [V, N] Hz
    centres = np.stack(np.meshgrid(*[(e[1:] + e[:-1]) / 2 for e in edges], indexing="ij"), -1).reshape(-1, 2)[visited]
    test_counts = arrays["test"].counts.reshape(-1, rec.n_units)
    log_post = test_counts @ np.log(rates * BAYES_BIN).T - BAYES_BIN * rates.sum(1)  # [S, V]
    post = np.exp(log_post - log_post.max(1, keepdims=True))
    decoded = (post / post.sum(1, keepdims=True)) @ centres
    truth = arrays["test"].behavior.reshape(-1, 2)
    scale = rec.metadata["position_scale"]  # pixels per z-unit, per axis

    def median_px(guess: np.ndarray) -> float:
        return float(np.median(np.linalg.norm((guess - truth) * scale, axis=1)))

    guesses = (centres[log_post.argmax(1)], decoded, pos.mean(0)[None])  # MAP, posterior mean, chance
    return {"R2": decoding_r2(decoded, truth), **{k: median_px(g) for k, g in zip(BAYES_ERRORS, guesses)}}


def hippo_recordings() -> dict[str, Recording]:
    return {name: replace(hippo_recording(f"nelpy_{name}"), session=name) for name in ("wmaze", "lineartrack")}


def run_hippocampus(budget: Budget, out: Path) -> dict[str, dict]:
    """Per-session position decoding baselines: Wiener filter and place-field Bayesian decoder."""
    rows: dict[str, dict] = {}
    for name, rec in hippo_recordings().items():
        blocks = {f"{s} blocks": int(np.sum(rec.trials.columns["split"] == s)) for s in ("train", "val", "test")}
        print(f"{name}: {rec.n_units} units, moving blocks {blocks}", flush=True)
        timed(rows, f"{name} wiener", lambda rec=rec, blocks=blocks: {**hippo_wiener(rec), **blocks})
        timed(rows, f"{name} bayes (place fields)", lambda rec=rec: hippo_bayes(rec))
    return rows


def run_transfer_task(budget: Budget, out: Path) -> dict[str, Any]:
    """Per-spike decoders pretrained on the W-maze, moved to the linear track (and trained there from scratch)."""
    from spikefm.eval.transfer import TransferConfig, run_transfer

    recs = hippo_recordings()
    config = TransferConfig(
        models=["poyo", "possm", "spint"], held_out="lineartrack", window=1.0, batch_size=16,
        model_overrides={m: {"behavior_key": "position"} for m in ("poyo", "possm", "spint")},
        calibration_trials=budget.hippo["k"], pretrain_steps=budget.hippo["pretrain"],
        adapt_steps=budget.hippo["adapt"], scratch_steps=budget.hippo["scratch"], seed=SEED,
        sessions_per_batch=0, out_dir=str(out / "transfer"),
    )
    start = time.perf_counter()
    result = run_transfer(config, dataset=SimpleNamespace(recordings=[recs["wmaze"], recs["lineartrack"]]))
    return {"result": json.loads(result.to_json()), "markdown": result.markdown(),
            "seconds": round(time.perf_counter() - start, 1)}


# ----------------------------------------------------------------------------- MC_Maze_Small
def maze_recording() -> Recording:
    rec = load(DATA / "nlb" / "sub-Jenkins_ses-small_desc-test_ecephys.nwb")
    rec = hold_out_units(rec, fraction=0.25, seed=SEED)
    return shuffle_trial_splits(rec, seed=SEED)


SMOOTHING_GRID = [(sd, alpha) for sd in (0.04, 0.06, 0.08) for alpha in (0.01, 0.1, 1.0, 10.0)]


def maze_smoothing(rec: Recording) -> dict[str, float]:
    """NLB smoothing baseline on 20 ms bins, kernel sd and GLM alpha chosen on the val trials."""
    from spikefm.eval.baselines import SmoothingBaseline
    from spikefm.eval.metrics import co_bps

    arrays = {s: trial_arrays(rec, split=s, bin_size=0.02, window=0.7, behavior_key=None)
              for s in ("train", "val", "test")}

    def fitted(sd: float, alpha: float) -> SmoothingBaseline:
        return SmoothingBaseline(bin_size=0.02, kernel_sd=sd, alpha=alpha).fit(
            arrays["train"].heldin_counts, arrays["train"].heldout_counts)

    def scored(model: SmoothingBaseline, split: str) -> float:
        return co_bps(model.predict(arrays[split].heldin_counts)[1], arrays[split].heldout_counts)

    sd, alpha = max(SMOOTHING_GRID, key=lambda setting: scored(fitted(*setting), "val"))
    nlb_sd, nlb_alpha = 0.06, 0.1  # NLB's mc_maze_small setting (NLB_SMOOTHING_DEFAULTS)
    return {"co-bps": scored(fitted(sd, alpha), "test"), "kernel_sd": sd, "alpha": alpha,
            "co-bps at NLB setting": scored(fitted(nlb_sd, nlb_alpha), "test")}


def maze_model(name: str, rec: Recording, steps: int, out: Path) -> dict[str, float]:
    from spikefm.eval.report import score_table

    overrides = {"stndt": {"n_bins": 35}}.get(name, {})
    result, config = train_model(name, rec, steps=steps, window=0.7, out=out, sampler="trials",
                                 overrides=overrides, batch_size=32)
    return {"co-bps": score_table(result.module, config, [rec]).rows[(rec.session, name)]["co-bps"]}


def run_mc_maze(budget: Budget, out: Path) -> dict[str, dict]:
    rec = maze_recording()
    rows: dict[str, dict] = {}
    timed(rows, "smoothing", lambda: maze_smoothing(rec))
    for name in ("ndt1", "stndt", "mtm"):
        timed(rows, name, lambda name=name: maze_model(name, rec, budget.maze_steps[name], out / "mc_maze"))
    return rows


# ----------------------------------------------------------------------------- report
def _cell(row: dict, key: str) -> str:
    if "error" in row:
        return f"did not run ({row['error']})"
    return f"{row[key]:.3f}"


def _errors(row: dict) -> str:
    return " / ".join(f"{row[k]:.0f}" for k in BAYES_ERRORS) if all(k in row for k in BAYES_ERRORS) else ""


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = ["# Real-data score table (generated by `benchmarks/real_data.py`)", "",
             f"CPU: {env['cpu']} ({env['cores']} cores, shared with other jobs), torch {env['torch']}, "
             f"numpy {env['numpy']}, lightning {env['lightning']}, python {env['python']}, "
             f"{env['torch_threads']} torch thread(s), seed {env['seed']}, tiny presets. "
             f"Wall time {results['seconds'] / 60:.1f} min"
             + (f" (the longest of {results['runs']} runs side by side)" if results.get("runs", 1) > 1 else "")
             + (" (quick smoke run)" if results["quick"] else "") + ".", ""]
    if "m1" in results:
        lines += ["## M1 reaching: hand-velocity R2, last 20% of the session (contiguous)", "",
                  "| model | decode R2 | wall s |", "|---|---|---|"]
        lines += [f"| {n} | {_cell(r, 'R2')} | {r['seconds']} |" for n, r in results["m1"].items()] + [""]
    if "hippocampus" in results:
        lines += ["## Hippocampus: position R2 on moving test blocks (last 20% of moving time)", "",
                  "Median error: distance in pixels from the true position (Bayes decoder only); chance "
                  "always says the training mean position.", "",
                  "| session / model | position R2 | median error px: MAP / mean / chance | wall s |", "|---|---|---|---|"]
        lines += [f"| {n} | {_cell(r, 'R2')} | {_errors(r)} | {r['seconds']} |"
                  for n, r in results["hippocampus"].items()] + [""]
    if "transfer" in results:
        transfer = results["transfer"]
        lines += ["## Hippocampus transfer W-maze -> linear track (k = calibration blocks of 1 s)", "",
                  "`within` is the W-maze-pretrained model on W-maze test blocks (position decoding on the W-maze); "
                  "`scratch` trains on the linear track's first k train blocks only.", "",
                  transfer["markdown"], "", f"Transfer wall time {transfer['seconds']} s.", ""]
    if "mc_maze" in results:
        lines += ["## MC_Maze_Small: co-smoothing (25% units held out, seed 0), 20 test trials, 20 ms bins", "",
                  "| model | co-bps | wall s |", "|---|---|---|"]
        lines += [f"| {n} | {_cell(r, 'co-bps')} | {r['seconds']} |" for n, r in results["mc_maze"].items()] + [""]
    return "\n".join(lines)


TASKS = {"m1": run_m1, "hippocampus": run_hippocampus, "transfer": run_transfer_task, "mc_maze": run_mc_maze}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few steps per model (smoke test)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    parser.add_argument("--out", type=Path, default=Path("runs/real_data"), help="run folders and results.json")
    parser.add_argument("--table", type=Path, default=None, help="markdown table path (default: results folder)")
    parser.add_argument("--combine", type=Path, nargs="+", default=None,
                        help="only merge these results.json files (tasks run as separate processes) into one table")
    args = parser.parse_args()
    if args.combine:
        write_table(combine(args.combine), args.table)
        return
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the real recordings live in ../shared/data beside the repository")
    torch.set_num_threads(1)
    start, budget = time.perf_counter(), Budget.make(args.quick)
    results: dict[str, Any] = {"environment": environment(), "quick": args.quick}
    for task in args.tasks.split(","):
        print(f"== {task}", flush=True)
        task_start = time.perf_counter()
        results[task] = TASKS[task](budget, args.out)
        results[f"{task}_seconds"] = round(time.perf_counter() - task_start, 1)
    results["seconds"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    write_table(results, args.table)


def combine(paths: list[Path]) -> dict[str, Any]:
    """One results dict from several runs' ``results.json``; wall time is the longest run's (they ran side by side)."""
    parts = [json.loads(path.read_text()) for path in paths]
    merged = {k: v for part in parts for k, v in part.items()}
    merged["seconds"] = max(part["seconds"] for part in parts)
    merged["quick"] = any(part["quick"] for part in parts)
    merged["runs"] = len(parts)
    return merged


def write_table(results: dict[str, Any], table: Path | None) -> None:
    table = table or (RESULTS / ("real_data_quick.md" if results["quick"] else "real_data.md"))
    table.write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
