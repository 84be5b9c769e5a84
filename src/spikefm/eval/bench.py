"""``spikefm bench``: the protocol's suites, each a list of candidates and the data they are chosen and scored on.

* ``synthetic`` (the sealed synthetic test): every choice is made on synthetic draw 0 (train / val only);
  the chosen recipes are frozen (written to the results folder) before the fresh draws
  :data:`SEALED_DRAWS` are generated with the same generator settings, and the table is scored on those.
  Each model is scored on its task (:data:`MODEL_TASKS`): co-bps against NLB smoothing (acausal and causal),
  decode R2 against causal and acausal Wiener filters and a Kalman filter (a causal model: causal ones only),
  Neuroformer's generation (bits/spike of all units over whole trials, each 50 ms chunk conditioned on the recorded
  spikes before it and the behaviour; :mod:`spikefm.eval.generation_candidate`) against a Poisson GLM on the same
  recorded past and behaviour.
* ``synthetic-lorenz``: the same protocol on the Lorenz latent system (:data:`SYNTHETIC_SUITES`); SPINT's
  row is scored here (trial-structured data, where its calibration from train trials identifies the units).
* ``--data FILE`` (:func:`file_suite`): a user's recording (NWB, .mat, .npz, spikefm store). A continuous
  one is cut into contiguous blocks (:mod:`spikefm.eval.blocks`); a trial-structured one keeps its trial
  ``split`` column. Rows: the Wiener filters, the Kalman filter and the models asked for, decoding its behaviour.
* a recipe (``configs/poyo_tiny.yaml``; :func:`recipe_suite`): that model on the recipe's data, against the
  baselines of its task.

Every suite writes ``<out>/<suite>.json`` (see :class:`~spikefm.eval.protocol.ProtocolResult`) and
``<out>/<suite>.md`` in one table layout; :func:`merge_results` combines several such files (rows from separate
sittings) into one table.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.eval.cache import ResultCache
from spikefm.eval.baselines import baselines_for, make_baseline
from spikefm.eval.binned_forward_candidate import BinnedForwardCandidate
from spikefm.eval.candidates import BaselineCandidate, Task, masked_metric
from spikefm.eval.chunk_decode_candidate import ChunkDecodeCandidate, chunk_decode_baselines, chunk_decode_task
from spikefm.eval.encoding_candidate import EncodingCandidate
from spikefm.eval.generation_candidate import GenerationCandidate, generation_task
from spikefm.eval.metrics import BITS_PER_SPIKE, CO_BPS, DECODE_R2, ENC_BPS, POSITION_R2
from spikefm.eval.model_candidate import ModelCandidate
from spikefm.eval.mtm_candidate import MaskedTaskCandidate, masked_task
from spikefm.eval.mtm_tasks import TASKS as MTM_TASKS
from spikefm.eval.rates_decoder_candidate import RatesDecoderCandidate
from spikefm.eval.recalibrated_candidate import RecalibratedCandidate, RecalibratedUnitRateCandidate
from spikefm.eval.unit_rate_candidate import UnitForwardCandidate, UnitRateCandidate
from spikefm.eval.protocol import (Budget, DataSpec, ProtocolResult, ablation_name, environment, run, select_all,
                                   started_on)

__all__ = ["SEALED_DRAWS", "MODEL_TASKS", "SYNTHETIC_SUITES", "SyntheticSettings", "synthetic_suite", "file_suite",
           "recipe_suite", "run_bench", "merge_results"]

SEALED_DRAWS = (1001, 1002, 1003)  # generator seeds never used during development
DEV_DRAW = 0
#: The unified model's second mode within a session (:mod:`spikefm.eval.recalibrated_candidate`): decoding and
#: co-smoothing rows trained as the recipe's, then their identity offsets on the train trials.
RECALIBRATED = "unified:decode:recalibrated"
RECALIBRATED_COBPS = "unified:co-bps:recalibrated"
#: The second mode of a recipe candidate's row (``unified:<task>:<candidate>:recalibrated``): population frames'
#: label-free identity plus the learned offsets (the forty-sixth sitting, on M1).
RECALIBRATED_POPULATION = "unified:decode:population:recalibrated"
#: NDT1's forward prediction, trained with each window's last 200 ms hidden
#: (:mod:`~spikefm.eval.binned_forward_candidate`).
NDT1_FORWARD = "ndt1:forward_pred"
#: Neuroformer's behaviour decoding, chunk by chunk (:mod:`spikefm.eval.chunk_decode_candidate`).
CHUNK_DECODE = "neuroformer:decode"
#: NEDS's encoding: every unit's counts from the behaviour alone (:mod:`spikefm.eval.encoding_candidate`).
ENCODING = "neds:encoding"
#: Self-supervised binned models whose rates can be decoded (``--models ndt1:rates``).
RATES_MODELS = ("ndt1", "stndt", "mtm", "ndt2")
MODEL_TASKS = {"ndt1": CO_BPS, "stndt": CO_BPS, "mtm": CO_BPS, "ndt2": CO_BPS, "poyo": DECODE_R2,
               "poyo_plus": DECODE_R2, "possm": DECODE_R2, "ndt3": DECODE_R2, "neds": DECODE_R2,
               "unified": DECODE_R2, "spint": DECODE_R2, "neuroformer": BITS_PER_SPIKE,
               "ndt2_decoder": DECODE_R2,
               # a self-supervised model's rates decoded by a Wiener filter (NLB's vel R2 idea as a decoding row)
               **{f"{m}:rates": DECODE_R2 for m in RATES_MODELS},
               CHUNK_DECODE: DECODE_R2,
               ENCODING: ENC_BPS,
               # MtM's four masked-prediction tasks, one row each (``--models mtm:tasks`` runs all four)
               **{f"mtm:{task}": masked_metric(task) for task in MTM_TASKS},
               # the unified model's held-out unit rates per 50 ms chunk (run with co_bps_bin = 0.05), and its
               # ablations (:data:`UNIFIED_ABLATIONS`) on the same task
               "unified:co-bps": CO_BPS, "unified:co-bps:table": CO_BPS, "unified:co-bps:untriggered": CO_BPS,
               "unified:co-bps:binned": CO_BPS, "unified:co-bps:transformer": CO_BPS,
               # its decoding row's ablations
               "unified:decode:table": DECODE_R2, "unified:decode:supervised": DECODE_R2,
               "unified:decode:binned": DECODE_R2, "unified:decode:transformer": DECODE_R2,
               "unified:decode:onepass": DECODE_R2, "unified:co-bps:onepass": CO_BPS,  # input identity, one pass
               # whitened triggered states (the recipe since the thirty-fourth sitting) and the plain ones, in a session
               "unified:decode:whitened": DECODE_R2, "unified:co-bps:whitened": CO_BPS,
               "unified:decode:plain": DECODE_R2, "unified:co-bps:plain": CO_BPS,
               # population frames (label-free identity from how units co-vary; the thirty-eighth sitting, on M1)
               "unified:decode:population": DECODE_R2,
               # its second mode within a session: identity offsets recalibrated on the labelled train trials
               RECALIBRATED: DECODE_R2, RECALIBRATED_COBPS: CO_BPS, RECALIBRATED_POPULATION: DECODE_R2,
               # its forward prediction (MtM's forward_pred task: the last 200 ms, in its 50 ms chunks)
               "unified:forward_pred": masked_metric("forward_pred"),
               "unified:forward_pred:forward4": masked_metric("forward_pred"),  # trained at horizons 1..4
               "unified:forward_pred:onepass": masked_metric("forward_pred"),  # input identity in one pass
               NDT1_FORWARD: masked_metric("forward_pred"),  # NLB's NDT1 forward setup: last 200 ms always hidden
               # co-smoothing rows of models whose main row decodes (held-out units' rates from spikefm.eval.predict)
               "ndt3:cosmoothing": CO_BPS, "neds:cosmoothing": CO_BPS}
#: Issue 16's ablations of the unified model, as fixed config overrides of a ``unified:<task>:<ablation>`` row.
UNIFIED_ABLATIONS = {"table": {"identity": "table", "triggered_input": False},  # POYO's row per unit, not the IDEncoder
                     "untriggered": {"triggered_identity": False},  # readout identity from the IDEncoder alone
                     "supervised": {"schemes": (), "count_weight": 0.0},  # behaviour only: no masking, no counts
                     "binned": {"input_bin": 0.05},  # counts per unit per 50 ms chunk instead of spike times
                     "forward4": {"forward_chunks": 4},  # the causal scheme at horizons 1..4 chunks, not 1 only
                     "onepass": {"triggered_input": False},  # input identities from the IDEncoder alone (one pass)
                     "transformer": {"core": "transformer"},  # a causal transformer over the last 20 chunks
                     # the first pass's triggered states whitened (ridge 0.1): a recipe candidate in the thirty-third
                     # and thirty-fourth sittings and the recipe since, so this row now equals the recipe's
                     "whitened": {"input_ridge": 0.1},
                     "plain": {"input_ridge": None},  # the plain triggered average (the recipe until 2026-12-05)
                     # + each unit's loadings on its session's top 32 principal components (spikefm.nn.population)
                     "population": {"population_pcs": 32}}
#: Rows of :data:`UNIFIED_ABLATIONS` that would replace the recipe rather than knock an ingredient out: paired with
#: the parents as the recipe's row is (and, as every ablation, with the recipe's row). ``whitened`` became the recipe
#: after the thirty-fourth sitting and stays listed so that sitting's and the thirty-third's commands rebuild their
#: tables as recorded; ``population`` (an option for within-session decoding) meets POSSM in the thirty-ninth and
#: fortieth sittings.
RECIPE_CANDIDATES = ("whitened", "population")
#: Rows ``<model>:<task>[:<ablation>]`` of spike-token models scored from their per-chunk unit counts.
UNIT_COUNT_ROWS = {"co-bps": UnitRateCandidate, "forward_pred": UnitForwardCandidate}
#: The kind of baseline each metric is compared with (:func:`spikefm.eval.baselines.baselines_for`).
METRIC_KIND = {CO_BPS: "self_supervised", BITS_PER_SPIKE: "generation", ENC_BPS: "encoding", DECODE_R2: "decoding",
               POSITION_R2: "decoding", **{masked_metric(task): task for task in MTM_TASKS}}
#: How a model trains in the suites when it differs from trial windows, 32 a batch: (sampler, windows per batch).
#: The per-spike decoders train on random windows. SPINT trains as its recipe does (``configs/spint_tiny.yaml``):
#: 64 trial windows a batch, since each window's identities are calibrated from the other windows of its session
#: in the batch (until 2026-12-04 it trained on 16 random windows; those rows are marked in the results).
TRAINING = {"poyo": ("random", 16), "poyo_plus": ("random", 16), "possm": ("random", 16), "spint": ("trials", 64)}


@dataclass(frozen=True)
class SyntheticSettings:
    """The generator settings shared by the development draw and the sealed draws (one session each)."""

    n_trials: int = 100
    units: tuple[int, int] = (40, 60)
    system: str = "rotational"

    @classmethod
    def quick(cls, system: str = "rotational") -> "SyntheticSettings":
        return cls(n_trials=30, units=(16, 16), system=system)

    @property
    def prefix(self) -> str:
        """Session names of the draws: ``synth-<seed>`` (rotational), ``<system>-<seed>`` otherwise."""
        return "synth" if self.system == "rotational" else self.system

    def name(self, seed: int) -> str:
        return f"{self.prefix}-{seed}"

    @property
    def suite(self) -> str:
        """The suite's label in results: ``synthetic`` (rotational), ``synthetic (<system>)`` otherwise."""
        return "synthetic" if self.system == "rotational" else f"synthetic ({self.system})"

    @property
    def stem(self) -> str:
        """Results file stem: ``synthetic`` (rotational), ``synthetic_<system>`` otherwise."""
        return "synthetic" if self.system == "rotational" else f"synthetic_{self.system}"

    def draw(self, seed: int) -> Recording:
        from spikefm.data.synthetic import SyntheticConfig, generate

        config = SyntheticConfig(n_sessions=1, n_trials=self.n_trials, units_per_session=self.units,
                                 latent_system=self.system, seed=seed)
        return replace(generate(config).recordings[0], session=self.name(seed))


#: Synthetic suites by name: the latent system each one draws (same trial count and unit range).
SYNTHETIC_SUITES = {"synthetic": "rotational", "synthetic-lorenz": "lorenz"}
#: The models a suite scores when ``--models`` is not given.
SUITE_MODELS = {"synthetic": ("ndt1", "poyo"), "synthetic-lorenz": ("spint",)}


def _chunk_task(task: Task) -> Task:
    """The suite's decoding task as Neuroformer's chunk decoding scores it (same trials and behaviour, 10 ms bins)."""
    return chunk_decode_task(_base(CHUNK_DECODE), window=task.window, behavior_key=task.behavior_key)


def _baselines(task: Task, models: Sequence[str]) -> list[BaselineCandidate]:
    """The baselines the ``models`` are compared with on ``task`` (causal models: causal baselines only);
    with no model, every baseline of the task. The acausal Wiener filter reads at most the model's window."""
    from spikefm.models.registry import is_causal

    if CHUNK_DECODE in models:  # Wiener filters that read what Neuroformer's chunk decoding reads
        others = [m for m in models if m != CHUNK_DECODE]
        if others:
            raise ValueError(f"{CHUNK_DECODE} is compared with filters that read its 100 ms span; score it in a "
                             f"sitting of its own, not with {others}")
        return chunk_decode_baselines(_chunk_task(task))
    kind = METRIC_KIND[task.metric]
    names = baselines_for(kind, causal=False)
    if models:
        names = [n for n in names if any(n in baselines_for(kind, causal=is_causal(_base(m))) for m in models)]
    widened = ("wiener acausal", "behaviour GLM")  # acausal: read at most the model's window, and all of it
    return [BaselineCandidate(make_baseline(n, **({"window_bins": task.window_bins} if n in widened else {})), task)
            for n in names]


def _freeze(out: Path, stem: str, selected_on: str, settings: dict[str, Any], selections: dict) -> None:
    """Write the chosen recipes to ``<out>/<stem>_frozen_recipes.json`` before any scoring data is drawn."""
    out.mkdir(parents=True, exist_ok=True)
    frozen = {"frozen_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "selected_on": selected_on,
              "settings": settings, "recipes": {name: s.params for name, s in selections.items()}}
    (out / f"{stem}_frozen_recipes.json").write_text(json.dumps(frozen, indent=2, default=str))


def _base(model: str) -> str:
    """The registered model of a suite entry (``"mtm:forward_pred"`` -> ``"mtm"``)."""
    return model.partition(":")[0]


def expand_models(models: Sequence[str]) -> list[str]:
    """Suite entries with ``mtm:tasks`` expanded to MtM's four task rows."""
    return [e for m in models for e in ([f"mtm:{t}" for t in MTM_TASKS] if m == "mtm:tasks" else [m])]


def _models(models: Sequence[str], task_of: Callable[[str], Task], budget: Budget, out: Path,
            batch_size: int = 32) -> list[ModelCandidate]:
    out_models = []
    for m in models:
        task = task_of(m)
        if m == CHUNK_DECODE:  # Neuroformer trained on its own windows, decoding every chunk of the trials
            out_models.append(ChunkDecodeCandidate(_base(m), _chunk_task(task), max_steps=budget.max_steps,
                                                   out_dir=out / "runs" / _base(m), sampler="random",
                                                   batch_size=batch_size))
            continue
        if m == NDT1_FORWARD:  # NDT1 trained and scored with the window's last 200 ms hidden from its input
            out_models.append(BinnedForwardCandidate(_base(m), task, max_steps=budget.max_steps, batch_size=batch_size,
                                                     out_dir=out / "runs" / _base(m),
                                                     overrides=_binned_overrides(_base(m), task)))
            continue
        if m == ENCODING:  # NEDS trained as its decoding row, scored with every spike hidden
            out_models.append(EncodingCandidate(_base(m), task, max_steps=budget.max_steps, batch_size=batch_size,
                                                out_dir=out / "runs" / _base(m),
                                                overrides=_binned_overrides(_base(m), task)))
            continue
        if m.endswith(":rates"):  # a self-supervised model at the task's bins, its rates -> a Wiener filter
            out_models.append(RatesDecoderCandidate(_base(m), task, max_steps=budget.max_steps, batch_size=batch_size,
                                                    overrides=_binned_overrides(_base(m), task),
                                                    out_dir=out / "runs" / _base(m)))
            continue
        if m.startswith("unified:") and m.endswith(":recalibrated"):  # trained as its label-free row, then offsets
            sampler, batch = TRAINING.get("unified", ("trials", batch_size))
            _, kind, *candidate, _ = m.split(":")  # unified:<task>[:<recipe candidate>]:recalibrated
            row = RecalibratedUnitRateCandidate if kind == "co-bps" else RecalibratedCandidate
            out_models.append(row("unified", task, max_steps=budget.max_steps, sampler=sampler, batch_size=batch,
                                  out_dir=out / "runs" / "unified",
                                  overrides=dict(UNIFIED_ABLATIONS[candidate[0]]) if candidate else {}))
            continue
        per_chunk = UNIT_COUNT_ROWS.get(m.split(":")[1] if ":" in m and _base(m) != "mtm" else "")
        if per_chunk is not None:  # a spike-token model's counts per chunk, scored on one task (":<ablation>" optional)
            sampler, batch = TRAINING.get(_base(m), ("trials", batch_size))  # as its decoding row trains
            ablation = UNIFIED_ABLATIONS[m.split(":")[2]] if m.count(":") == 2 else {}
            out_models.append(per_chunk(_base(m), task, max_steps=budget.max_steps, overrides=ablation,
                                        out_dir=out / "runs" / _base(m), sampler=sampler, batch_size=batch))
            continue
        if m.startswith("unified:decode:"):  # an ablation of the unified model's decoding row
            sampler, batch = TRAINING.get("unified", ("trials", batch_size))
            ablation = UNIFIED_ABLATIONS[m.split(":")[2]]
            candidate = ModelCandidate("unified", task, max_steps=budget.max_steps, out_dir=out / "runs" / "unified",
                                       sampler=sampler, batch_size=batch, overrides=ablation)
            candidate.name = ablation_name("unified", ablation)
            out_models.append(candidate)
            continue
        if m.endswith(":cosmoothing"):  # a decoding model's co-smoothing row, trained as for decoding
            candidate = ModelCandidate(_base(m), task, max_steps=budget.max_steps, out_dir=out / "runs" / _base(m),
                                       batch_size=batch_size, overrides=_binned_overrides(_base(m), task))
            candidate.name = f"{_base(m)} co-bps"
            out_models.append(candidate)
            continue
        if ":" in m:  # one of MtM's masked tasks, trained as the co-smoothing row, scored on its task
            out_models.append(MaskedTaskCandidate(_base(m), task, max_steps=budget.max_steps,
                                                  out_dir=out / "runs" / _base(m), batch_size=batch_size,
                                                  mtm_task=m.partition(":")[2]))
            continue
        if task.metric == BITS_PER_SPIKE:  # generative: trains on its own chunks, scored by generating trials
            out_models.append(GenerationCandidate(m, task, max_steps=budget.max_steps, out_dir=out / "runs" / m,
                                                  sampler="random", batch_size=batch_size))
            continue
        sampler, batch = TRAINING.get(m, ("trials", batch_size))
        overrides = _binned_overrides(m, task) if task.metric == CO_BPS else {}
        out_models.append(ModelCandidate(m, task, max_steps=budget.max_steps, out_dir=out / "runs" / m,
                                         sampler=sampler, batch_size=batch, overrides=overrides))
    return out_models


def synthetic_suite(models: Sequence[str], budget: Budget, out: Path, cache: ResultCache,
                    settings: SyntheticSettings, draws: Sequence[int] = SEALED_DRAWS, log=print,
                    co_bps_bin: float = 0.02) -> ProtocolResult:
    """Select on draw 0, freeze the recipes, then generate ``draws`` and score on them.

    ``co_bps_bin``: seconds per co-smoothing bin; binned models are set to it (``unified:co-bps`` needs its 50 ms
    chunk, so a sitting comparing it with MtM / NDT1 uses 0.05 for all of them).
    """
    tasks = {CO_BPS: Task(CO_BPS, window=1.0, bin_size=co_bps_bin),
             DECODE_R2: Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel"),
             BITS_PER_SPIKE: generation_task("neuroformer", window=1.0, behavior_key="hand_vel"),
             ENC_BPS: Task(ENC_BPS, window=1.0, bin_size=0.02, behavior_key="hand_vel"),
             **{masked_metric(t): masked_task(t, window=1.0, bin_size=co_bps_bin) for t in MTM_TASKS}}
    models = expand_models(models)
    unknown = [m for m in models if m not in MODEL_TASKS]
    if unknown:
        raise ValueError(f"synthetic suite: no task for model(s) {unknown}; known: {sorted(MODEL_TASKS)}")
    metrics = dict.fromkeys(MODEL_TASKS[m] for m in models) or dict.fromkeys(tasks)
    candidates: list = [b for metric in metrics
                        for b in _baselines(tasks[metric], [m for m in models if MODEL_TASKS[m] == metric])]
    candidates += _models(models, lambda m: tasks[MODEL_TASKS[m]], budget, out)
    dev = DataSpec(settings.name(DEV_DRAW), settings.draw(DEV_DRAW), "development draw (selection only)")
    # Selection alone first: the recipes are frozen to disk before any sealed draw exists.
    selections = select_all(candidates, dev, budget, cache, log)
    _freeze(out, settings.stem, dev.name, asdict(settings), selections)
    sealed = [DataSpec(settings.name(seed), settings.draw(seed), "fresh draw, same generator settings")
              for seed in draws]
    result = run(settings.suite, candidates, select_on=dev, score_on=sealed, budget=budget, cache=cache,
                 selections=selections, pairs=unified_versus_parents(candidates), log=log)
    result.notes.append(f"Selection on {dev.name} (train/val); recipes frozen before drawing {list(draws)}.")
    return result


#: Transfer suites by name: the latent system of their worlds (:class:`~spikefm.eval.transfer_candidate.TransferWorld`).
TRANSFER_SUITES = {"transfer-lorenz": "lorenz"}
#: Worlds never generated during development (a 5-session world's first sessions equal the 1-session draws of the
#: same seed, so the synthetic suites' seeds are not reused).
TRANSFER_DRAWS = (3001, 3002, 3003)
TRANSFER_ROWS = ("spint:zero_shot", "unified:zero_shot", "poyo:recalibrate")
TRANSFER_K = (8, 32)


def transfer_suite(rows: Sequence[str], budget: Budget, out: Path, cache: ResultCache, world: Any,
                   draws: Sequence[int] = TRANSFER_DRAWS, ks: Sequence[int] = TRANSFER_K,
                   log=print) -> ProtocolResult:
    """Transfer to a new session (:mod:`spikefm.eval.transfer_candidate`): ``rows`` are ``model:condition``; each is
    pretrained on a world's other sessions (``budget.max_steps`` steps, a fixed recipe), adapted with the first k
    train trials of the new session (every k of ``ks``), its adaptation chosen on world 0's new session's
    validation trials, and scored on the new sessions of the fresh worlds ``draws``. A decoder's row is scored by
    decode R2, a self-supervised model's (``mtm:finetune``) by co-bps of the new session's held-out units."""
    from spikefm.eval.transfer_candidate import Pretraining, transfer_task

    task = transfer_task()
    dev_pretrain, dev_target = world.draw(DEV_DRAW)
    sources = {dev_target.session: dev_pretrain}  # the fresh worlds join it only after selection
    pretraining = Pretraining(steps=budget.max_steps)
    candidates = _transfer_candidates(rows, ks, task, sources, pretraining)
    select_on = DataSpec(dev_target.session, dev_target, "world 0's new session (selection only)")
    selections = select_all(candidates, select_on, budget, cache, log)  # before any fresh world exists
    _freeze(out, "transfer_lorenz" if world.system == "lorenz" else f"transfer_{world.system}", select_on.name,
            asdict(world), selections)
    score_on = []
    for seed in draws:
        pretrain, target = world.draw(seed)
        sources[target.session] = pretrain
        score_on.append(DataSpec(target.session, target, f"new session of fresh world {seed}; pretrained on its "
                                 f"other {len(pretrain)} sessions"))
    result = run(f"transfer ({world.system})", candidates, select_on=select_on, score_on=score_on, budget=budget,
                 cache=cache, selections=selections, pairs=unified_versus_parents(candidates), log=log)
    result.notes.append(f"Pretraining (fixed, not searched): {asdict(pretraining)} on the train trials of each "
                        f"world's first {world.n_sessions - 1} sessions; adaptation chosen on {dev_target.session}'s "
                        f"val trials; scored on the new sessions of worlds {list(draws)}.")
    return result


def _transfer_candidates(rows: Sequence[str], ks: Sequence[int], task: Task, sources: dict[str, list[Recording]],
                         pretraining: Any) -> list:
    """Per k: the baselines fitted on the k trials, then each ``model:condition`` row. A decoder's row is scored by
    ``task`` (decode R2) against the Wiener / Kalman filters; a self-supervised model's row (MtM) by co-bps of the new
    session's held-out units in its bins (:mod:`~spikefm.eval.cobps_transfer_candidate`) against NLB smoothing."""
    from spikefm.eval.cobps_transfer_candidate import CoBpsTransferCandidate, cobps_transfer_task
    from spikefm.eval.transfer_candidate import TransferCandidate
    from spikefm.models.registry import get_spec

    parsed = [_transfer_row(row) for row in rows]
    cobps = {model: cobps_transfer_task(model, window=task.window) for model, _, _ in parsed
             if get_spec(model).task == "self_supervised"}
    candidates: list = []
    for k in ks:
        if not parsed or any(model not in cobps for model, _, _ in parsed):  # a row decodes (or baselines only)
            for name in ("wiener causal", "wiener acausal", "kalman"):
                extra = {"window_bins": task.window_bins} if name == "wiener acausal" else {}
                candidates.append(BaselineCandidate(make_baseline(name, **extra), task, train_trials=k))
        for bins in sorted({t.bin_size for t in cobps.values()}):
            smoothing = Task(CO_BPS, window=task.window, bin_size=bins)
            candidates += [BaselineCandidate(make_baseline(name), smoothing, train_trials=k)
                           for name in baselines_for("self_supervised", causal=False)]
        for model, condition, ablation in parsed:
            fixed = {"overrides": UNIFIED_ABLATIONS[ablation]} if ablation else {}
            if model in cobps:
                candidates.append(CoBpsTransferCandidate(model, condition or "finetune", k, cobps[model], sources,
                                                         pretraining, **fixed))
            else:
                candidates.append(TransferCandidate(model, condition or "zero_shot", k, task, sources, pretraining,
                                                    **fixed))
    return candidates


def _transfer_row(row: str) -> tuple[str, str, str]:
    """``model[:condition[:ablation]]`` -> (model, condition, ablation); ablations are the unified model's
    (:data:`UNIFIED_ABLATIONS`)."""
    model, condition, ablation = (row.split(":") + ["", ""])[:3]
    if ablation and (model != "unified" or ablation not in UNIFIED_ABLATIONS):
        raise ValueError(f"transfer row {row!r}: ablations are the unified model's, one of {sorted(UNIFIED_ABLATIONS)}")
    return model, condition, ablation


def recording_transfer_suite(rows: Sequence[str], budget: Budget, out: Path, cache: ResultCache, target: Recording,
                             sources: Sequence[Recording], task: Task, ks: Sequence[int] = TRANSFER_K,
                             log=print) -> ProtocolResult:
    """Transfer between real recordings: each ``model:condition`` row is pretrained on the train trials of
    ``sources`` (``budget.max_steps`` steps, the fixed transfer recipe), adapted with the first k train trials of
    ``target`` (every k of ``ks``), its adaptation chosen on the target's val trials, and scored once on the
    target's test trials, against Wiener and Kalman filters fitted on the same k trials (a self-supervised model's
    row: co-bps of the target's held-out units, against smoothing fitted on the same k trials).

    Raises:
        DataError: a source shares the target's session name (its new rows would be the source's), or a co-bps row
            meets a target with no held-out units.
        ValueError: ``ks`` are not distinct positive counts, or the target has fewer train trials than the largest.
    """
    from spikefm.eval.transfer import calibration_pool
    from spikefm.eval.transfer_candidate import Pretraining

    if not sources:
        raise DataError("transfer needs at least one recording to pretrain on")
    clash = [s.source or s.session for s in sources if s.session == target.session]
    if clash:
        raise DataError(f"pretraining recording(s) {clash} have the target's session name {target.session!r}; "
                        "give the sessions distinct names")
    ks = _check_ks(ks, calibration_pool(target).size, target.session)
    pretraining = Pretraining(steps=budget.max_steps)
    candidates = _transfer_candidates(rows, ks, task, {target.session: list(sources)}, pretraining)
    if any(c.metric == CO_BPS for c in candidates) and not np.asarray(target.units.heldout).any():
        raise DataError(f"{target.session}: co-smoothing transfer rows ({', '.join(rows)}) need held-out units in "
                        "the new recording, and it flags none")
    names = ", ".join(s.session for s in sources)
    spec = DataSpec(target.session, target, f"new session; pretrained on {names}")
    result = run(f"transfer {names} -> {target.session}", candidates, select_on=spec, score_on=[spec], budget=budget,
                 cache=cache, pairs=unified_versus_parents(candidates), log=log)
    result.notes.append(f"Pretraining (fixed, not searched): {asdict(pretraining)} on the train trials of {names}; "
                        f"adaptation chosen on {target.session}'s val trials; scored on its test trials once.")
    return result


def unified_versus_parents(candidates: Sequence[Any]) -> list[tuple[str, str]]:
    """(unified row, other model's row) paired on the same test trials and seeds.

    Transfer rows: zero-shot against zero-shot (SPINT), recalibration against recalibration (POYO), at the same k
    trials of the new session. Within a session: the unified model's row (not an ablation) against every other
    model's row of the same task (its parents on their own tasks: POYO / POSSM / SPINT decoding, MtM / NDT1
    co-smoothing, MtM forward prediction). Ablation rows are paired with the recipe's row only, except the recipe
    candidates (:data:`RECIPE_CANDIDATES`) and the second mode (:data:`RECALIBRATED`, :data:`RECALIBRATED_COBPS`,
    :data:`RECALIBRATED_POPULATION`), which are paired with the parents too. A recipe candidate's second mode is
    also paired with that candidate's label-free row (the recipe's own second mode meets the recipe's row as any
    ablation does)."""
    from spikefm.eval.protocol import _role, ablation_name, ablation_of

    def slot(c: Any) -> tuple:  # the task, and for transfer rows the condition and k
        return c.metric, getattr(c, "condition", None), getattr(c, "k", None)

    def compared(c: Any) -> bool:  # the recipe's row, or a recipe candidate's
        return ablation_of(c.name) is None or getattr(c, "paired_with_parents", False) or any(
            getattr(c, "overrides", None) == UNIFIED_ABLATIONS[name] for name in RECIPE_CANDIDATES)

    rows = [c for c in candidates if _role(c) == "model"]
    names = {c.name for c in rows}
    versus_label_free = [(u.name, base) for u in rows if getattr(u, "paired_with_parents", False) and u.overrides
                         for base in [ablation_name(ablation_of(u.name) or u.name, u.overrides)]  # no mode
                         if base in names and base != u.name]
    return [(u.name, c.name) for u in rows if getattr(u, "model", None) == "unified" and compared(u)
            for c in rows if getattr(c, "model", None) != "unified" and slot(c) == slot(u)] + versus_label_free


DECODE, CO_SMOOTHING = "decode", "co-bps"  # file_suite's tasks


def file_suite(path: Path, models: Sequence[str], budget: Budget, out: Path, cache: ResultCache, *,
               task: str | None = None, behavior_key: str | None = None, block: float = 1.0,
               bin_size: float | None = None, heldout_fraction: float = 0.25, split_seed: int = 0,
               co_bps_bin: float | None = None, log=print) -> ProtocolResult:
    """The protocol on one recording file: its own trial splits, or contiguous blocks of ``block`` seconds.

    Args:
        task: "decode" (decoding R2 of ``behavior_key``; the default when the file has behaviour) or "co-bps"
            (co-smoothing; the default without behaviour). For co-bps a file that marks no held-out units gets a
            seeded ``heldout_fraction`` of them held out, and one whose ``split`` column lacks a train, val or
            test trial gets a seeded 70/10/20 trial split (``split_seed`` for both).
        bin_size: seconds per bin (default: the file's, else 50 ms for decoding and 20 ms for co-bps).
        co_bps_bin: seconds per bin of the co-bps task only (``unified:co-bps`` scores its 50 ms chunks, so a
            sitting comparing it with MtM / NDT1 sets 0.05 for all of them); ``bin_size`` wins when both are given.

    With co-bps, rows of MtM's masked tasks (``mtm:forward_pred``, ``unified:forward_pred``: the last 200 ms of each
    trial window from the rest, every unit) are scored on the same trials and bins, against their own baselines.
    """
    from spikefm.data.store import load

    rec = load(path)
    task = task or (DECODE if rec.behavior else CO_SMOOTHING)
    if task == DECODE:
        rec, scored, description = _decoding_data(rec, path, behavior_key, block, bin_size)
    elif task == CO_SMOOTHING:
        rec, scored, description = _cosmoothing_data(rec, bin_size or co_bps_bin, heldout_fraction, split_seed)
    else:
        raise ValueError(f"bench --data task must be {DECODE!r} or {CO_SMOOTHING!r}, got {task!r}")
    tasks = {scored.metric: scored}
    if task == CO_SMOOTHING:  # MtM's masked tasks (e.g. forward_pred) on the same trials, bins and held-out units
        tasks.update({masked_metric(t): masked_task(t, window=scored.window, bin_size=scored.bin_size)
                      for t in MTM_TASKS})
    models = expand_models(models)
    metric_of = {m: MODEL_TASKS[m] if MODEL_TASKS.get(m) in tasks else scored.metric for m in models}
    candidates: list = [b for metric in dict.fromkeys(metric_of.values()) or [scored.metric]
                        for b in _baselines(tasks[metric], [m for m in models if metric_of[m] == metric])]
    model_candidates = _models(models, lambda m: tasks[metric_of[m]], budget, out, batch_size=16)
    if task == CO_SMOOTHING:  # binned models read the task's bins (STNDT's width is its window in bins)
        model_candidates = [replace(m, overrides={**_binned_overrides(m.model, scored), **m.overrides})
                            for m in model_candidates]
    candidates += model_candidates
    spec = DataSpec(rec.session, rec, f"{path.name}: {description}")
    return run(f"file {path.name}", candidates, select_on=spec, score_on=[spec], budget=budget, cache=cache,
               pairs=unified_versus_parents(candidates), log=log)


def _file_transfer(data: Path, sources: Sequence[Path], rows: Sequence[str], budget: Budget, out: Path,
                   cache: ResultCache, behavior_key: str | None, block: float, ks: Sequence[int] | None,
                   log) -> ProtocolResult:
    """``bench --data NEW --transfer-from OLD``: both files prepared as ``--data`` decoding prepares one."""
    from spikefm.data.store import load

    target, task, _ = _decoding_data(load(data), data, behavior_key, block, None)
    if task.continuous:  # blocks of a continuous recording: transfer adapts and scores on whole blocks
        task = replace(task, continuous=False)
    prepared = [_decoding_data(load(p), p, task.behavior_key, block, None)[0] for p in sources]
    clash = [str(p) for p, rec in zip(sources, prepared) if rec.session == target.session]
    if clash:
        raise DataError(f"{', '.join(clash)} and {data} record the same session {target.session!r}; transfer "
                        "pretrains on other sessions")
    return recording_transfer_suite(rows, budget, out, cache, target, prepared, task,
                                    TRANSFER_K if ks is None else ks, log=log)


def _has_splits(rec: Recording, needed: Sequence[str] = ("train", "val", "test")) -> bool:
    return (rec.trials is not None and len(rec.trials) > 0 and "split" in rec.trials.columns
            and set(needed) <= set(rec.trials.columns["split"].tolist()))


def _decoding_data(rec: Recording, path: Path, behavior_key: str | None, block: float,
                   bin_size: float | None) -> tuple[Recording, Task, str]:
    from spikefm.eval.blocks import block_recording

    if not rec.behavior:
        raise DataError(f"{path}: no behaviour to decode; give a file with behaviour, or score co-smoothing")
    key = behavior_key or next(iter(rec.behavior))
    if key not in rec.behavior:
        raise DataError(f"{path}: no behaviour {key!r}; available: {sorted(rec.behavior)}")
    has_splits = _has_splits(rec, needed=())  # any split column: the file's own trial splits
    if not has_splits:
        rec = block_recording(rec, block=block, behavior_key=key)
    window = block if not has_splits else float(min(rec.trials.end - rec.trials.start))
    task = Task(POSITION_R2 if "pos" in key else DECODE_R2, window=window, bin_size=bin_size or rec.bin_size or 0.05,
                behavior_key=key, continuous=not has_splits)
    return rec, task, ("its trial splits" if has_splits else f"contiguous {block:g} s blocks, 70/10/20 in time order")


def _cosmoothing_data(rec: Recording, bin_size: float | None, fraction: float,
                      seed: int) -> tuple[Recording, Task, str]:
    from spikefm.data.splits import hold_out_units, shuffle_trial_splits

    if rec.trials is None or len(rec.trials) == 0:
        raise DataError(f"{rec.source or rec.session}: co-smoothing needs trials")
    notes = []
    if not np.any(rec.units.heldout):
        rec = hold_out_units(rec, fraction=fraction, seed=seed)
        notes.append(f"{int(rec.units.heldout.sum())} of {rec.n_units} units held out (seed {seed})")
    if not _has_splits(rec):
        rec = shuffle_trial_splits(rec, seed=seed)
        notes.append(f"trials split 70/10/20 at random (seed {seed})")
    window = float(min(rec.trials.end - rec.trials.start))
    task = Task(CO_BPS, window=window, bin_size=bin_size or rec.bin_size or 0.02)
    return rec, task, "; ".join(notes) or "its held-out units and trial splits"


def _binned_overrides(model: str, task: Task) -> dict[str, Any]:
    """A binned model's bin width and (for fixed-width models such as STNDT) window length in bins, from ``task``:
    only those that differ from its preset (so a run at the preset's bins keeps its cache key)."""
    from spikefm.models.registry import build_config

    preset = build_config(model, "tiny")
    wanted = {"bin_size": task.bin_size, "n_bins": task.window_bins}
    return {k: v for k, v in wanted.items() if hasattr(preset, k) and getattr(preset, k) != v}


def recipe_suite(path: Path, budget: Budget, out: Path, cache: ResultCache, log=print) -> ProtocolResult:
    """A recipe's model on the recipe's first recording, against the baselines of its task."""
    from spikefm.models.registry import build_config, get_spec
    from spikefm.train.config import load_recipe
    from spikefm.train.data import load_recordings

    config = load_recipe(path, [])
    rec = load_recordings(config.data, seed=config.trainer.seed)[0][0]
    spec = get_spec(config.model.name)
    name, overrides = config.model.name, dict(config.model.overrides)
    kind, fixed = ModelCandidate, {}
    if MODEL_TASKS.get(name) == BITS_PER_SPIKE:  # generative: scored by generating whole trials
        key = overrides.get("behavior_key") or build_config(name, config.model.preset).behavior_key
        trial_length = float(min(rec.trials.end - rec.trials.start))
        task = generation_task(name, trial_length, key, config.model.preset, **overrides)
        kind, fixed = GenerationCandidate, {"train_window": config.data.window}
    elif spec.task == "self_supervised":
        task = Task(CO_BPS, window=config.data.window, bin_size=0.02)
    else:
        key = overrides.get("behavior_key") or next(iter(rec.behavior))
        task = Task(POSITION_R2 if "pos" in key else DECODE_R2, window=config.data.window, bin_size=0.02,
                    behavior_key=key)
    candidates: list = _baselines(task, [name])
    candidates.append(kind(name, task, max_steps=min(budget.max_steps, config.trainer.max_steps),
                           sampler=config.data.sampler, batch_size=config.trainer.batch_size,
                           preset=config.model.preset, overrides=overrides, out_dir=out / "runs" / name, **fixed))
    data = DataSpec(rec.session, rec, f"recipe {path.name}'s data")
    return run(f"recipe {path.stem}", candidates, select_on=data, score_on=[data], budget=budget, cache=cache, log=log)


def run_bench(target: str | None, *, data: Path | None = None, quick: bool = False, trials: int | None = None,
              seeds: int | None = None, max_steps: int | None = None, models: Sequence[str] | None = None,
              out: Path = Path("runs/bench"), cache_dir: Path | None = None, behavior_key: str | None = None,
              block: float = 1.0, draws: Sequence[int] | None = None, co_bps_bin: float | None = None,
              ks: Sequence[int] | None = None, transfer_from: Sequence[Path] = (), command: str | None = None,
              log=print) -> tuple[Path, Path, dict[str, Any]]:
    """Run one suite; returns (results JSON path, markdown path, results).

    ``command``: the command line that asked for this run, kept in the results JSON (provenance: the manifest of
    ``benchmarks/protocol_sittings.yaml`` lists such commands).

    ``draws`` replaces a synthetic suite's sealed draws (:data:`SEALED_DRAWS`): a re-run whose recipe changed
    after the default draws' test split was read must be scored on draws nobody has scored before. ``ks`` replaces a
    transfer suite's numbers of the new session's trials (:data:`TRANSFER_K`), e.g. for a curve over k.
    ``transfer_from`` (with ``data``): recordings to pretrain on; ``data`` is then the new session
    (:func:`recording_transfer_suite`).
    """
    if ks is not None and target not in TRANSFER_SUITES and not transfer_from:
        raise ValueError(f"ks (trials of the new session) applies to the transfer suites ({', '.join(TRANSFER_SUITES)}) "
                         f"and to --data with --transfer-from, not to {target or data}")
    if transfer_from and data is None:
        raise ValueError("transfer_from needs data: the new session to transfer to")
    changes = {k: v for k, v in {"trials": trials, "seeds": seeds, "max_steps": max_steps}.items() if v is not None}
    budget = Budget.quick(**changes) if quick else Budget(**changes)
    cache = ResultCache(cache_dir or out / "cache")
    start, started_at = time.perf_counter(), environment()["commit"]  # the code a long sitting imported
    if data is not None and transfer_from:
        result = _file_transfer(data, transfer_from, list(models) if models is not None else list(TRANSFER_ROWS),
                                budget, out, cache, behavior_key, block, ks, log)
        stem = f"transfer_{data.stem}"
    elif data is not None:
        chosen = list(models) if models is not None else ["poyo"]
        result = file_suite(data, chosen, budget, out, cache, behavior_key=behavior_key, block=block,
                            co_bps_bin=co_bps_bin, log=log)
        stem = f"file_{data.stem}"
    elif target in SYNTHETIC_SUITES:
        system = SYNTHETIC_SUITES[target]
        settings = SyntheticSettings.quick(system) if quick else SyntheticSettings(system=system)
        draws = _check_draws(draws) if draws is not None else SEALED_DRAWS[:1] if quick else SEALED_DRAWS
        chosen = list(models) if models is not None else list(SUITE_MODELS[target])
        result = synthetic_suite(chosen, budget, out, cache, settings, draws, log=log, co_bps_bin=co_bps_bin or 0.02)
        stem = settings.stem
    elif target in TRANSFER_SUITES:
        from spikefm.eval.transfer_candidate import TransferWorld

        world = TransferWorld.quick() if quick else TransferWorld(system=TRANSFER_SUITES[target])
        chosen = list(models) if models is not None else list(TRANSFER_ROWS)
        fresh = _check_draws(draws) if draws is not None else TRANSFER_DRAWS[:1] if quick else TRANSFER_DRAWS
        from spikefm.data.synthetic import SyntheticConfig

        n_train = int(SyntheticConfig().split_fractions[0] * world.n_trials)
        ks = _check_ks(ks, n_train) if ks is not None else (2,) if quick else TRANSFER_K
        result = transfer_suite(chosen, budget, out, cache, world, fresh, ks=ks, log=log)
        stem = target.replace("-", "_")
    elif target is not None and Path(target).suffix in (".yaml", ".yml"):
        result = recipe_suite(Path(target), budget, out, cache, log=log)
        stem = f"recipe_{Path(target).stem}"
    else:
        raise ValueError(f"bench target {target!r}: give a synthetic suite ({', '.join(SYNTHETIC_SUITES)}), "
                         f"a transfer suite ({', '.join(TRANSFER_SUITES)}), "
                         "a recipe (.yaml) or --data FILE")
    result.wall_seconds = time.perf_counter() - start  # selection + scoring, this sitting
    result.environment = started_on(result.environment, started_at)  # selection may precede run(): the sitting's start
    stem += "_quick" if quick else ""
    out.mkdir(parents=True, exist_ok=True)
    payload = result.to_json()
    if command is not None:
        payload["command"] = command
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(json.dumps(payload, indent=2, default=str))
    md_path.write_text(result.markdown())
    return json_path, md_path, payload


def _check_ks(ks: Sequence[int], n_train: int, session: str = "the new session") -> tuple[int, ...]:
    """Distinct positive trial counts, sorted, each at most the new session's ``n_train`` train trials."""
    ks = tuple(int(k) for k in ks)
    if not ks or len(set(ks)) != len(ks) or min(ks) < 1:
        raise ValueError(f"ks must be distinct positive trial counts, got {list(ks)}")
    if max(ks) > n_train:
        raise ValueError(f"ks: {session} has {n_train} train trials, fewer than k = {max(ks)}")
    return tuple(sorted(ks))


def _check_draws(draws: Sequence[int]) -> tuple[int, ...]:
    draws = tuple(int(d) for d in draws)
    if not draws or len(set(draws)) != len(draws) or DEV_DRAW in draws or min(draws) < 0:
        raise ValueError(f"draws must be distinct non-negative generator seeds other than the development draw "
                         f"{DEV_DRAW}, got {list(draws)}")
    return draws


def merge_results(paths: Sequence[Path], out: Path, into: Sequence[Path] = ()) -> tuple[Path, Path, dict[str, Any]]:
    """One table from several results JSONs (:func:`spikefm.eval.protocol_report.merge`); writes
    ``<out>/merged.json`` and ``<out>/merged.md``, rewrites the marked model table of each document in ``into``
    (:func:`~spikefm.eval.protocol_report.embed_table`), and returns (JSON path, markdown path, merged rows)."""
    from spikefm.eval.protocol_report import embed_table, merge, merged_markdown, model_table

    merged = merge([json.loads(Path(p).read_text()) for p in paths], sources=[str(p) for p in paths])
    documents = {Path(d): embed_table(Path(d).read_text(), model_table(merged)) for d in into}  # all or none
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "merged.json", out / "merged.md"
    json_path.write_text(json.dumps(merged, indent=2, default=str))
    md_path.write_text(merged_markdown(merged))
    for document, text in documents.items():
        document.write_text(text)
    return json_path, md_path, merged
