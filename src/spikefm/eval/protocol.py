"""One evaluation protocol behind every score: choices on validation, the test split read once, seeds, intervals.

1. **Selection** (:func:`select`) sees only development data (:func:`spikefm.eval.sealed.seal` cuts the
   test trials out of the recording). Every candidate, model or baseline, gets the same declared search
   budget: ``budget.trials`` optuna trials (its default setting first, then a seeded TPE sampler) maximising its
   validation metric; models
   report ``-val/loss`` at each validation check to a median (or successive-halving) pruner.
2. **Seeds** (:func:`score`): the chosen configuration trains ``budget.seeds`` times (seeds 1..K, not the
   search seed; a deterministic baseline runs once) on the development data.
3. **Final scoring**: the :class:`~spikefm.eval.sealed.SealedTest` is released and opened once; every fitted
   candidate predicts the test trials / blocks. A candidate that tries to open it earlier gets
   :class:`~spikefm.eval.sealed.SealedTestError`.
4. **Intervals** (:mod:`spikefm.eval.intervals`): mean over seeds, 95% interval over seeds and a bootstrap
   of test trials; a model beats a baseline only when the interval of the difference excludes zero. A causal
   model is compared with causal baselines only.

Every search trial and every seed's test predictions are cached (:class:`~spikefm.eval.cache.ResultCache`),
so a run resumes where it stopped. :func:`run` returns a :class:`ProtocolResult` whose ``to_json`` holds, per
row: data, split sizes, budget, chosen config, seeds, per-seed scores, interval, commit, hardware, wall time,
CPU-hours.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.cache import SCORES_FORMAT, ResultCache, cache_key
from spikefm.eval.candidates import Candidate, TrialScores
from spikefm.eval.intervals import bootstrap, compare, interval, point_score
from spikefm.eval.sealed import SealedTest, fingerprint, seal, split_sizes

__all__ = ["Budget", "Selection", "Scored", "DataSpec", "ProtocolResult", "select", "select_all", "score", "run"]

SEARCH_SEED = 0


@dataclass(frozen=True)
class Budget:
    """The declared budget, the same for every candidate with knobs.

    Attributes:
        trials: optuna trials per candidate (models and baselines alike).
        seeds: training seeds of the chosen configuration (deterministic baselines run once).
        max_steps: the longest training run a model's search may choose.
        bootstrap: bootstrap replicates for the intervals.
        pruner: "median" (optuna MedianPruner) or "halving" (SuccessiveHalvingPruner), on validation loss.
    """

    trials: int = 8
    seeds: int = 3
    max_steps: int = 600
    bootstrap: int = 1000
    pruner: str = "median"

    def __post_init__(self) -> None:
        if self.trials < 1 or self.seeds < 1 or self.max_steps < 1 or self.bootstrap < 10:
            raise ValueError(f"budget needs trials, seeds, max_steps >= 1 and bootstrap >= 10, got {self}")
        if self.pruner not in ("median", "halving"):
            raise ValueError(f"pruner must be 'median' or 'halving', got {self.pruner!r}")

    @classmethod
    def quick(cls, **changes: Any) -> "Budget":
        """A CI-sized budget (seconds per candidate on tiny data)."""
        return cls(**{"trials": 2, "seeds": 2, "max_steps": 8, "bootstrap": 50, **changes})

    def final_seeds(self, candidate: Candidate) -> list[int]:
        return [SEARCH_SEED] if candidate.deterministic else list(range(1, self.seeds + 1))


def _pruner(name: str):
    import optuna

    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)


@dataclass
class Selection:
    """What the search chose, on validation only."""

    params: dict[str, Any]
    val_score: float
    trials: list[dict[str, Any]]
    cpu_seconds: float
    wall_seconds: float


def select(candidate: Candidate, dev: Recording, budget: Budget, cache: ResultCache | None = None) -> Selection:
    """Search ``candidate``'s space on ``dev`` (train / val only) with ``budget.trials`` optuna trials."""
    import optuna

    cache = cache or ResultCache(None)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data_key = fingerprint(dev)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=SEARCH_SEED),
                                pruner=_pruner(budget.pruner))
    study.enqueue_trial(candidate.default())  # the published / preset setting is always tried first
    records: list[dict[str, Any]] = []
    start = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        params = candidate.suggest(trial)
        key = cache_key(candidate=candidate.key(), data=data_key, params=params, seed=SEARCH_SEED, phase="search")
        entry = cache.get(key)
        if entry is None:
            entry = _search_trial(candidate, dev, params, trial)
            cache.put(key, entry)
        else:
            for step, value in entry["intermediate"]:
                trial.report(value, step)
        records.append({"params": params, **entry})
        if entry["state"] == "pruned":
            raise optuna.TrialPruned()
        return entry["value"]

    study.optimize(objective, n_trials=budget.trials, catch=())
    complete = [r for r in records if r["state"] == "complete" and np.isfinite(r["value"])]
    if not complete:
        raise RuntimeError(f"{candidate.name}: no search trial completed with a finite validation score: {records}")
    best = max(complete, key=lambda r: r["value"])
    return Selection(params=best["params"], val_score=best["value"], trials=records,
                     cpu_seconds=sum(r["cpu_seconds"] for r in records), wall_seconds=time.perf_counter() - start)


def _search_trial(candidate: Candidate, dev: Recording, params: dict[str, Any], trial) -> dict[str, Any]:
    import optuna

    intermediate: list[list[float]] = []

    def report(step: int, value: float) -> None:
        intermediate.append([step, value])
        trial.report(value, step)
        if trial.should_prune():
            raise optuna.TrialPruned()

    cpu = time.process_time()
    try:
        fitted = candidate.fit(dev, params, SEARCH_SEED, report)
        value, state = float(candidate.validate(fitted, dev)), "complete"
    except optuna.TrialPruned:
        value, state = float("nan"), "pruned"
    return {"state": state, "value": value if np.isfinite(value) else float("nan"),
            "intermediate": intermediate, "cpu_seconds": time.process_time() - cpu}


@dataclass
class Scored:
    """One candidate's test results on one dataset: per seed predictions, validation scores, cost."""

    seeds: list[int]
    scores: list[TrialScores]
    val_scores: list[float]
    cpu_seconds: float
    wall_seconds: float = 0.0


def score(
    candidates: Sequence[Candidate], params: dict[str, dict[str, Any]], dev: Recording, sealed: SealedTest,
    budget: Budget, cache: ResultCache | None = None,
) -> dict[str, Scored]:
    """Train each candidate's chosen ``params`` on ``dev`` for every seed, then open ``sealed`` once and score all."""
    cache = cache or ResultCache(None)
    done: dict[tuple[str, int], tuple[TrialScores, dict]] = {}
    pending: list[tuple[Candidate, int, str, Any, float, float]] = []
    wall = {candidate.name: 0.0 for candidate in candidates}
    for candidate in candidates:
        for seed in budget.final_seeds(candidate):
            key = cache_key(candidate=candidate.key(), data=sealed.fingerprint, params=params[candidate.name],
                            seed=seed, phase="test", scores_format=SCORES_FORMAT)
            hit = cache.get_scores(key)
            if hit is not None:
                done[candidate.name, seed] = hit
                continue
            cpu, t0 = time.process_time(), time.perf_counter()
            fitted = candidate.fit(dev, params[candidate.name], seed)
            val = float(candidate.validate(fitted, dev))
            pending.append((candidate, seed, key, fitted, val, time.process_time() - cpu))
            wall[candidate.name] += time.perf_counter() - t0
    if pending:
        sealed.release()  # selection and training are over: the final scoring step reads the test split once
        full = sealed.open()
        for candidate, seed, key, fitted, val, cpu_fit in pending:
            cpu, t0 = time.process_time(), time.perf_counter()
            scores = candidate.predict(fitted, full)
            wall[candidate.name] += time.perf_counter() - t0
            meta = {"val_score": val, "cpu_seconds": cpu_fit + time.process_time() - cpu}
            cache.put_scores(key, scores, meta)
            done[candidate.name, seed] = (scores, meta)
    out = {}
    for candidate in candidates:
        seeds = budget.final_seeds(candidate)
        hits = [done[candidate.name, s] for s in seeds]
        out[candidate.name] = Scored(seeds, [h[0] for h in hits], [h[1]["val_score"] for h in hits],
                                     sum(h[1]["cpu_seconds"] for h in hits), wall[candidate.name])
    return out


@dataclass
class DataSpec:
    """A recording to score on (with train / val / test trials or blocks) and how to describe it."""

    name: str
    recording: Recording
    description: str = ""


@dataclass
class ProtocolResult:
    """Rows (one per candidate), comparisons (model - baseline), ablations (model - the same model with one
    ingredient replaced, a row named ``"<model> [<overrides>]"``) and pairs (model - another model named by the
    suite, e.g. the unified model - its parent on the parent's task) of one protocol run."""

    suite: str
    rows: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    budget: Budget
    environment: dict[str, Any]
    wall_seconds: float
    notes: list[str] = field(default_factory=list)
    ablations: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "budget": asdict(self.budget), "environment": self.environment,
                "wall_seconds": round(self.wall_seconds, 1),
                "cpu_hours": round(sum(r["cpu_hours"] for r in self.rows), 4),
                "notes": self.notes, "rows": self.rows, "comparisons": self.comparisons, "ablations": self.ablations,
                "pairs": self.pairs}

    def markdown(self) -> str:
        from spikefm.eval.protocol_report import markdown

        return markdown(self.to_json())


def select_all(
    candidates: Sequence[Candidate], select_on: DataSpec, budget: Budget, cache: ResultCache | None = None,
    log=print,
) -> dict[str, Selection]:
    """Every candidate's configuration, searched on ``select_on``'s development data (its test is never opened)."""
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ValueError(f"candidate names must be unique, got {names}")
    dev, _ = seal(select_on.recording, name=select_on.name)
    selections: dict[str, Selection] = {}
    for candidate in candidates:
        log(f"select {candidate.name} on {select_on.name} ({budget.trials} trials)")
        selections[candidate.name] = select(candidate, dev, budget, cache)
        log(f"  chose {selections[candidate.name].params} (val {selections[candidate.name].val_score:.4f})")
    return selections


def run(
    suite: str,
    candidates: Sequence[Candidate],
    *,
    select_on: DataSpec,
    score_on: Sequence[DataSpec],
    budget: Budget,
    cache: ResultCache | None = None,
    selections: dict[str, Selection] | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    log=print,
) -> ProtocolResult:
    """Select every candidate on ``select_on``'s development data, then score the chosen configs on ``score_on``.

    ``select_on`` and ``score_on`` may be the same recording (its test split is never read by selection) or
    different draws (sealed synthetic test: selection on seed 0, scoring on fresh draws). ``selections`` passes
    choices already made by :func:`select_all` (e.g. frozen to disk before the scoring data existed). ``pairs``
    names (model, other model) rows whose paired difference is reported (same resampled test trials and seeds).
    """
    if not score_on:
        raise ValueError("run needs at least one dataset to score on (use select_all for selection alone)")
    _check_pairs(pairs, candidates)
    cache = cache or ResultCache(None)
    start, started = time.perf_counter(), _commit()  # the code this run imported, before a long sitting
    if selections is None:
        selections = select_all(candidates, select_on, budget, cache, log)
    params = {name: s.params for name, s in selections.items()}
    scored: dict[str, list[Scored]] = {c.name: [] for c in candidates}
    wall: dict[str, float] = {c.name: selections[c.name].wall_seconds for c in candidates}
    for spec in score_on:
        log(f"score on {spec.name}")
        spec_dev, sealed = seal(spec.recording, name=spec.name)
        for name, result in score(candidates, params, spec_dev, sealed, budget, cache).items():
            scored[name].append(result)
            wall[name] += result.wall_seconds
    rows, comparisons, ablations, paired = _rows(candidates, selections, scored, wall, select_on, score_on, budget,
                                                 pairs)
    return ProtocolResult(suite, rows, comparisons, budget, started_on(environment(), started),
                          time.perf_counter() - start, ablations=ablations, pairs=paired)


def started_on(env: dict[str, Any], commit: str) -> dict[str, Any]:
    """``env`` (taken at the end of a run) labelled with the ``commit`` the run started on, the tree's commit at the
    end kept as ``commit_at_end`` when they differ: a commit made during a long sitting must not relabel the code
    that produced its results. Idempotent for nested runs (a sitting around :func:`run` keeps the true end)."""
    end = env.get("commit_at_end", env["commit"])
    base = {k: v for k, v in env.items() if k != "commit_at_end"}
    return {**base, "commit": commit, **({"commit_at_end": end} if end != commit else {})}


def _rows(candidates, selections, scored, wall, select_on, score_on, budget, pairs=()):
    per_row = {c.name: [[*s.scores] for s in scored[c.name]] for c in candidates}
    rows, comparisons, ablations, paired = [], [], [], []
    for metric in dict.fromkeys(c.metric for c in candidates):
        group = [c for c in candidates if c.metric == metric]
        replicates = bootstrap({c.name: per_row[c.name] for c in group}, n_boot=budget.bootstrap)
        for c in group:
            sel = selections[c.name]
            cpu = sel.cpu_seconds + sum(s.cpu_seconds for s in scored[c.name])
            rows.append({
                "name": c.name, "metric": metric, "role": _role(c), "causal": c.causal, "information": c.info,
                "selected_on": {"data": select_on.name, "split_sizes": split_sizes(select_on.recording),
                                "splits_used": ["train", "val"]},
                "data": [{"name": s.name, "description": s.description, "split_sizes": split_sizes(s.recording)}
                         for s in score_on],
                "search": {"budget": asdict(budget), "space": c.key(), "trials": sel.trials,
                           "val_score": sel.val_score},
                "chosen_config": sel.params,
                "seeds": scored[c.name][0].seeds,
                "per_seed_scores": [[float(t.score()) for t in s.scores] for s in scored[c.name]],
                "per_seed_val_scores": [s.val_scores for s in scored[c.name]],
                "score": point_score(per_row[c.name]),
                "interval": list(interval(replicates[c.name])),
                "interval_method": f"95% percentile bootstrap, {budget.bootstrap} replicates, test trials/blocks "
                                   "resampled per dataset and seeds resampled per row",
                "wall_seconds": round(wall[c.name], 1),
                "cpu_hours": round(cpu / 3600, 4),
            })
        for model in (c for c in group if _role(c) == "model"):
            for base in (c for c in group if _role(c) == "baseline" and (c.causal or not model.causal)
                         and _comparable(model, c)):
                comparisons.append({"metric": metric, "model": model.name, "baseline": base.name,
                                    "baseline_information": base.info,
                                    **compare(replicates[model.name], replicates[base.name])})
        names = {c.name for c in group}
        for ablated in (c for c in group if ablation_of(c.name) in names):  # paired: same resampled test trials
            full = ablation_of(ablated.name)
            ablations.append({"metric": metric, "model": full, "ablation": ablated.name,
                              **compare(replicates[full], replicates[ablated.name])})
        for model, other in ((a, b) for a, b in pairs if a in names and b in names):
            paired.append({"metric": metric, "model": model, "versus": other,
                           **compare(replicates[model], replicates[other])})
    return rows, comparisons, ablations, paired


def _check_pairs(pairs: Sequence[tuple[str, str]], candidates: Sequence[Candidate]) -> None:
    """Both rows of every pair exist and score the same metric (else a typo would silently drop a comparison)."""
    metric = {c.name: c.metric for c in candidates}
    for model, other in pairs:
        missing = [n for n in (model, other) if n not in metric]
        if missing:
            raise ValueError(f"pair ({model!r}, {other!r}): no row named {', '.join(map(repr, missing))}")
        if metric[model] != metric[other]:
            raise ValueError(f"pair ({model!r}, {other!r}) compares {metric[model]} with {metric[other]}")


def ablation_name(name: str, overrides: dict[str, Any]) -> str:
    """``"<name> [k=v, ...]"``: the row of ``name`` run with fixed config ``overrides`` (``name`` when none)."""
    if not overrides:
        return name
    return f"{name} [" + ", ".join(f"{k}={v}" for k, v in sorted(overrides.items())) + "]"


def ablation_of(name: str) -> str | None:
    """The full model's row of an ablation row ``"<model> [<overrides>]"`` (None for any other name)."""
    base, bracket, rest = name.partition(" [")
    return base if bracket and rest.endswith("]") else None


def _comparable(model: Candidate, baseline: Candidate) -> bool:
    """Candidates compare when they read the same data budget: the same ``train_trials`` (k labelled or unlabeled
    trials of a new session, transfer rows) or neither has one."""
    return getattr(model, "train_trials", None) == getattr(baseline, "train_trials", None)


def _role(candidate: Candidate) -> str:
    return "model" if candidate.key().get("kind") == "model" else "baseline"


def environment() -> dict[str, Any]:
    """Commit, hardware and versions for the results file."""
    import torch

    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"commit": _commit(), "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "numpy": np.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _commit() -> str:
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


logging.getLogger("optuna").setLevel(logging.WARNING)
