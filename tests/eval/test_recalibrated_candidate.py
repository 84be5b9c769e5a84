"""The unified model's second mode within a session: identity offsets trained on the train trials, nothing else."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from spikefm.data.recording import DataError, Intervals
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.cache import cache_key
from spikefm.eval.candidates import Task
from spikefm.eval.metrics import DECODE_R2
from spikefm.eval.model_candidate import ModelCandidate
from spikefm.eval.protocol import Budget, ablation_of
from spikefm.eval.recalibrated_candidate import RecalibratedCandidate, train_trial_rows

TASK = Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel")


@pytest.fixture(scope="module")
def session():
    return generate(SyntheticConfig(n_sessions=1, n_trials=12, units_per_session=(8, 8), seed=3,
                                    latent_system="lorenz")).recordings[0]


def test_only_the_sessions_identity_offsets_move(session, tmp_path) -> None:
    """The shared network stays as the recipe's row trained it; every unit of the session gets a learned offset,
    and the offsets change what the model decodes."""
    recipe = ModelCandidate("unified", TASK, max_steps=2, out_dir=tmp_path)
    trained = recipe.fit(session, {**recipe.default(), "steps": 2}, seed=0)
    before = {k: v.detach().clone() for k, v in trained["model"].named_parameters()}
    row = RecalibratedCandidate("unified", TASK, max_steps=2, out_dir=tmp_path, recalibrate_steps=5)
    fitted = row.recalibrate({**trained, "model": copy.deepcopy(trained["model"])}, session, seed=0)
    after = dict(fitted["model"].named_parameters())
    offsets = [k for k in after if k.startswith("identity_offset.")]
    assert offsets and all(k not in before or before[k].numel() == 0 for k in offsets)
    assert all(torch.equal(before[k], after[k]) for k in before if k not in offsets)
    table = fitted["model"].identity_offset
    assert sorted(table.keys) == sorted(session.unit_keys())
    assert table.offsets(session.unit_keys(), torch.zeros(1)).abs().sum(dim=1).gt(0).all()
    assert row.validate(fitted, session) != recipe.validate(trained, session)
    assert session.session not in fitted["model"].calibrated_sessions  # scoring registers the fixed set itself


def test_fit_is_the_recipes_training_then_recalibration(session, tmp_path) -> None:
    row = RecalibratedCandidate("unified", TASK, max_steps=2, out_dir=tmp_path, recalibrate_steps=2)
    fitted = row.fit(session, {**row.default(), "steps": 2}, seed=0)
    assert sorted(fitted["model"].identity_offset.keys) == sorted(session.unit_keys())
    assert not any(p.requires_grad for p in fitted["model"].parameters())


def test_the_row_has_its_own_cache_key_and_meets_the_recipe_and_the_parents(tmp_path) -> None:
    from spikefm.eval.bench import MODEL_TASKS, RECALIBRATED, _models, unified_versus_parents

    from spikefm.eval.bench import RECALIBRATED_COBPS
    from spikefm.eval.metrics import CO_BPS

    rows = _models(["unified", RECALIBRATED, "possm"], lambda m: TASK, Budget(trials=1, seeds=1, max_steps=2),
                   Path(tmp_path))
    recipe, recalibrated, possm = rows
    cobps = Task(CO_BPS, window=1.0, bin_size=0.05)
    smoothing = _models(["unified:co-bps", RECALIBRATED_COBPS, "mtm"], lambda m: cobps,
                        Budget(trials=1, seeds=1, max_steps=2), Path(tmp_path))
    assert {("unified co-bps", "mtm"), ("unified co-bps [mode=recalibrated]", "mtm")} <= set(
        unified_versus_parents(smoothing))
    assert MODEL_TASKS[RECALIBRATED] == DECODE_R2
    assert recalibrated.name == "unified [mode=recalibrated]" and ablation_of(recalibrated.name) == "unified"
    assert cache_key(**recalibrated.key()) != cache_key(**recipe.key())
    assert {("unified", "possm"), (recalibrated.name, "possm")} <= set(unified_versus_parents(rows))


def test_a_recipe_candidates_second_mode_meets_its_label_free_row_and_the_parents(tmp_path) -> None:
    from spikefm.eval.bench import (MODEL_TASKS, RECALIBRATED_POPULATION, UNIFIED_ABLATIONS, _models,
                                    unified_versus_parents)

    rows = _models(["unified:decode:population", RECALIBRATED_POPULATION, "possm"], lambda m: TASK,
                   Budget(trials=1, seeds=1, max_steps=2), Path(tmp_path))
    population, recalibrated, _ = rows
    assert MODEL_TASKS[RECALIBRATED_POPULATION] == DECODE_R2
    assert recalibrated.overrides == UNIFIED_ABLATIONS["population"]
    assert recalibrated.name == "unified [mode=recalibrated, population_pcs=32]"
    assert cache_key(**recalibrated.key()) != cache_key(**population.key())
    pairs = unified_versus_parents(rows)
    assert {(population.name, "possm"), (recalibrated.name, "possm"), (recalibrated.name, population.name)} <= set(
        pairs)
    assert len(pairs) == len(set(pairs)) == 3


def test_the_co_smoothing_row_trains_the_held_out_units_offsets_too(tmp_path) -> None:
    """Co-smoothing's second mode: every unit's offset (held-out units' from their train-trial counts) moves, the
    shared network does not, and the held-out units' predicted rates change."""
    from spikefm.eval.metrics import CO_BPS
    from spikefm.eval.recalibrated_candidate import RecalibratedUnitRateCandidate
    from spikefm.eval.unit_rate_candidate import UnitRateCandidate

    rec = generate(SyntheticConfig(n_sessions=1, n_trials=12, units_per_session=(8, 8), seed=4,
                                   latent_system="lorenz")).recordings[0]
    task = Task(CO_BPS, window=1.0, bin_size=0.05)
    recipe = UnitRateCandidate("unified", task, max_steps=2, out_dir=tmp_path, calibration_windows=4)
    trained = recipe.fit(rec, {**recipe.default(), "steps": 2}, seed=0)
    before = {k: v.detach().clone() for k, v in trained["model"].named_parameters()}
    row = RecalibratedUnitRateCandidate("unified", task, max_steps=2, out_dir=tmp_path, calibration_windows=4,
                                        recalibrate_steps=5)
    assert row.name == "unified co-bps [mode=recalibrated]" and ablation_of(row.name) == "unified co-bps"
    fitted = row.recalibrate({**trained, "model": copy.deepcopy(trained["model"])}, rec, seed=0)
    after = dict(fitted["model"].named_parameters())
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("identity_offset."))
    heldout = [k for k, h in zip(rec.unit_keys(), rec.units.heldout) if h]
    assert heldout and fitted["model"].identity_offset.offsets(heldout, torch.zeros(1)).abs().sum(1).gt(0).all()
    assert row.validate(fitted, rec) != recipe.validate(trained, rec)


def test_clear_errors(session, tmp_path) -> None:
    with pytest.raises(ValueError, match="already learns a row per unit"):
        RecalibratedCandidate("unified", TASK, overrides={"identity": "table", "triggered_input": False},
                              out_dir=tmp_path)
    with pytest.raises(ValueError, match="no recalibration mode"):
        RecalibratedCandidate("spint", TASK, out_dir=tmp_path)
    columns = {k: v for k, v in session.trials.columns.items() if k != "split"}
    unsplit = replace(session, trials=Intervals(session.trials.start, session.trials.end, columns))
    with pytest.raises(DataError, match="'split' column"):
        train_trial_rows(unsplit)
    assert train_trial_rows(session) == [i for i, s in enumerate(session.trials.columns["split"]) if s == "train"]
