"""The real-data score table, regenerated with the evaluation protocol (:mod:`spikefm.eval.protocol`).

Every M1 and MC_Maze_Small number is the protocol's: every choice (lags, ridge alpha, kernel width, learning
rate, steps, EMA, checkpoint) is made on the validation split with the same declared search budget for models
and baselines, the test split is opened once at the end, the chosen configuration trains with several seeds,
and each row carries a 95% interval (seeds and test blocks / trials resampled). Nothing is picked by hand here.

* **M1 reaching** (Stevenson 2011, 171 units, 50 ms binned counts): ``spikefm bench --data`` on the file
  (:func:`spikefm.eval.bench.file_suite`): 1 s contiguous blocks, 70/10/20 in time order, hand velocity
  z-scored on train; decode R2 of POYO (acausal, reads its 1 s window) and POSSM (causal) against the causal
  Wiener filter, the acausal Wiener filter capped at the model's 1 s window, and the Kalman filter.
* **MC_Maze_Small** (NLB test file, 107 units, 100 trials of 0.7 s): co-smoothing with a seeded 25% of units
  held out and a seeded 70/10/20 trial split (the file's trials are all "test" and it has no held-out units);
  NDT1, STNDT and MtM against NLB smoothing (kernel width and GLM alpha chosen on val; acausal and causal).
* **Hippocampus** (rat, W-maze and linear track): per-session position decoding on moving 1 s blocks. The
  Wiener and Kalman rows are under the protocol (the baselines only); the place-field Bayes decoder (fixed
  settings) is **not yet under the protocol** and is labelled so in the outputs. The W-maze -> linear track
  transfer is under the protocol (``--tasks transfer``; pretraining takes ``--steps``): the unified model's
  zero-shot and recalibration against SPINT's and POYO's, and filters fitted on the same k linear-track blocks.

Run ``python benchmarks/real_data.py`` (``--tasks m1,mc_maze`` for a subset, ``--quick`` for a smoke run,
``--trials/--seeds/--steps`` for the budget; ``SPIKEFM_REAL_DATA=/path/to/shared/data`` when the repository
is not beside it). Search trials and test scores are cached under ``--out``, so an interrupted run resumes,
and a run of some tasks updates only their sections of the results file.
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize when run as a script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")  # before numpy: multi-threaded BLAS busy-waits on a shared CPU

import numpy as np  # noqa: E402
import torch  # noqa: E402

from spikefm.data.recording import Recording  # noqa: E402
from spikefm.data.splits import contiguous_blocks, ordered_trial_splits  # noqa: E402
from spikefm.data.store import load  # noqa: E402
from spikefm.eval.baselines import make_baseline  # noqa: E402
from spikefm.eval.bench import file_suite, recording_transfer_suite  # noqa: E402
from spikefm.eval.blocks import zscore_behaviour  # noqa: E402
from spikefm.eval.cache import ResultCache  # noqa: E402
from spikefm.eval.candidates import BaselineCandidate, Task  # noqa: E402
from spikefm.eval.metrics import POSITION_R2, decoding_r2  # noqa: E402
from spikefm.eval.protocol import Budget, DataSpec, ProtocolResult, environment, run  # noqa: E402
from spikefm.eval.protocol_report import markdown as protocol_markdown  # noqa: E402
from spikefm.eval.trials import trial_arrays  # noqa: E402

DATA = Path(os.environ.get("SPIKEFM_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"
M1_FILE = Path("m1_reaching") / "m1_stevenson_2011.mat"
MAZE_FILE = Path("nlb") / "sub-Jenkins_ses-small_desc-test_ecephys.nwb"
M1_MODELS = ("poyo", "possm", "ndt1:rates")  # NDT1 is not a decoder: its rates are decoded by a Wiener filter
MAZE_MODELS = ("ndt1", "stndt", "mtm")
HIPPO_BASELINES = ("wiener causal", "wiener acausal", "kalman")
NOT_PROTOCOL = "not yet under the protocol: fixed settings, one seed, no validation search"
# W-maze -> linear track: the unified model against each parent on the parent's condition (zero-shot: SPINT;
# gradient recalibration: POYO), k moving 1 s blocks of the linear track (659 train blocks).
TRANSFER_ROWS = ("unified:zero_shot", "unified:recalibrate", "spint:zero_shot", "poyo:recalibrate")
TRANSFER_K, TRANSFER_K_QUICK = (32, 256), (8,)


# ----------------------------------------------------------------------------- protocol tasks
def run_m1(budget: Budget, out: Path, cache: ResultCache, models: tuple[str, ...] = M1_MODELS) -> ProtocolResult:
    """``spikefm bench --data m1_stevenson_2011.mat --behavior hand_vel --models poyo,possm``."""
    return file_suite(DATA / M1_FILE, list(models), budget, out / "m1", cache, task="decode",
                      behavior_key="hand_vel", block=1.0)


def run_mc_maze(budget: Budget, out: Path, cache: ResultCache,
                models: tuple[str, ...] = MAZE_MODELS) -> ProtocolResult:
    """``spikefm bench --data sub-Jenkins_ses-small_desc-test_ecephys.nwb --models ndt1,stndt,mtm`` (co-bps)."""
    return file_suite(DATA / MAZE_FILE, list(models), budget, out / "mc_maze", cache, task="co-bps",
                      bin_size=0.02, heldout_fraction=0.25, split_seed=0)


def run_hippo_baselines(budget: Budget, out: Path, cache: ResultCache) -> dict[str, ProtocolResult]:
    """The Wiener and Kalman position decoders of each session, under the protocol (moving blocks only)."""
    task = Task(POSITION_R2, window=1.0, bin_size=0.05, behavior_key="position")
    results = {}
    for name, rec in hippo_recordings().items():
        candidates = [BaselineCandidate(make_baseline(b, **({"window_bins": task.window_bins}
                                                            if b == "wiener acausal" else {})), task)
                      for b in HIPPO_BASELINES]
        spec = DataSpec(name, rec, f"{name}: moving 1 s blocks, 70/10/20 in time order, position z-scored on train")
        results[name] = run(f"hippocampus {name}", candidates, select_on=spec, score_on=[spec], budget=budget,
                            cache=cache)
    return results


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


def run_hippo_transfer(budget: Budget, out: Path, cache: ResultCache, quick: bool = False) -> ProtocolResult:
    """W-maze -> linear track under the protocol (:func:`spikefm.eval.bench.recording_transfer_suite`): pretrained on
    the W-maze's moving train blocks, adapted with the linear track's first k moving train blocks, the adaptation
    chosen on its val blocks, scored once on its test blocks, against filters fitted on the same k blocks."""
    recs = hippo_recordings()
    task = Task(POSITION_R2, window=1.0, bin_size=0.05, behavior_key="position")
    return recording_transfer_suite(list(TRANSFER_ROWS), budget, out / "hippo_transfer", cache, recs["lineartrack"],
                                    [recs["wmaze"]], task, ks=TRANSFER_K_QUICK if quick else TRANSFER_K)


def run_bayes() -> dict[str, dict[str, Any]]:
    """The place-field Bayes decoder on each session (fixed settings: not yet under the protocol)."""
    return {name: {**hippo_bayes(rec), "status": NOT_PROTOCOL} for name, rec in hippo_recordings().items()}


# ----------------------------------------------------------------------------- report
def _protocol_section(title: str, payload: dict[str, Any]) -> list[str]:
    """A protocol result's own markdown, its top-level title demoted under ``title``."""
    body = protocol_markdown(payload).replace("# Protocol results:", "### Protocol results:")
    return [f"## {title}", "", *body.splitlines(), ""]


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = ["# Real-data score table (generated by `benchmarks/real_data.py`, evaluation protocol)", "",
             f"CPU: {env['cpu']} ({env['cores']} cores, shared with other jobs; load average "
             f"{results['load_average']['start']} at the start, {results['load_average']['end']} at the end), "
             f"torch {env['torch']}, numpy {env['numpy']}, python {env['python']}, {env['torch_threads']} torch "
             f"thread(s), tiny presets. Budget: {results['budget']}."
             + (" Quick smoke run: the numbers mean nothing." if results["quick"] else ""), ""]
    if "m1" in results:
        lines += _protocol_section("M1 reaching: hand-velocity decode R2, last 20% of the session (contiguous)",
                                   results["m1"])
    if "mc_maze" in results:
        lines += _protocol_section("MC_Maze_Small: co-smoothing (seeded 25% of units held out, seeded trial split)",
                                   results["mc_maze"])
    if "hippocampus" in results:
        for name, payload in results["hippocampus"].items():
            lines += _protocol_section(f"Hippocampus {name}: position R2 on moving test blocks (baselines)", payload)
    if "bayes" in results:
        lines += [f"## Hippocampus: place-field Bayes decoder ({NOT_PROTOCOL})", "",
                  "Median error: distance in pixels from the true position; chance always says the training "
                  "mean position.", "",
                  "| session | position R2 | median error px: MAP / mean / chance |", "|---|---|---|"]
        lines += [f"| {n} | {r['R2']:.3f} | {' / '.join(f'{r[k]:.0f}' for k in BAYES_ERRORS)} |"
                  for n, r in results["bayes"].items()] + [""]
    if "transfer" in results:
        lines += _protocol_section("Hippocampus transfer W-maze -> linear track: position R2 on the linear track's "
                                   "moving test blocks", results["transfer"])
    return "\n".join(lines)


PROTOCOL_TASKS: dict[str, Callable[[Budget, Path, ResultCache], Any]] = {
    "m1": run_m1, "mc_maze": run_mc_maze, "hippocampus": run_hippo_baselines}


def run_task(task: str, budget: Budget, out: Path, cache: ResultCache, quick: bool) -> Any:
    """One task's JSON-ready results."""
    if task in PROTOCOL_TASKS:
        result = PROTOCOL_TASKS[task](budget, out, cache)
        if isinstance(result, dict):
            return {name: r.to_json() for name, r in result.items()}
        return result.to_json()
    if task == "bayes":
        return run_bayes()
    if task == "transfer":
        return run_hippo_transfer(budget, out, cache, quick).to_json()
    raise SystemExit(f"unknown task {task!r}; choose from {', '.join(TASKS)}")


TASKS = (*PROTOCOL_TASKS, "bayes", "transfer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized protocol budget (smoke test)")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    parser.add_argument("--trials", type=int, default=6, help="search trials per candidate (models and baselines)")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds of each chosen configuration")
    parser.add_argument("--steps", type=int, default=600, help="longest training run a model's search may choose")
    parser.add_argument("--out", type=Path, default=Path("runs/real_data"), help="run folders and the result cache")
    parser.add_argument("--results", type=Path, default=None,
                        help="results JSON (default benchmarks/results/real_data.json); the table is written beside it")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the real recordings live in ../shared/data beside the repository")
    torch.set_num_threads(1)
    budget = (Budget.quick(trials=min(args.trials, 2), seeds=min(args.seeds, 2)) if args.quick
              else Budget(trials=args.trials, seeds=args.seeds, max_steps=args.steps))
    path = args.results or RESULTS / ("real_data_quick.json" if args.quick else "real_data.json")
    results: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if results.get("budget") != budget.__dict__ or results.get("quick") != args.quick:
        results = {}  # another budget (or an older file): sections would not be comparable, start afresh
    results.update({"environment": environment(), "quick": args.quick, "budget": budget.__dict__,
                    "load_average": {"start": [round(x, 2) for x in os.getloadavg()]}})
    cache = ResultCache(args.out / "cache")
    for task in args.tasks.split(","):
        print(f"== {task}", flush=True)
        start = time.perf_counter()
        results[task] = run_task(task, budget, args.out, cache, args.quick)
        results.setdefault("seconds", {})[task] = round(time.perf_counter() - start, 1)
    results["load_average"]["end"] = [round(x, 2) for x in os.getloadavg()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str))
    path.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
