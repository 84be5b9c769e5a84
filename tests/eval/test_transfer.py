"""The transfer protocol: conditions per model, scores, the report, and SPINT's permutation invariance."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.transfer import (
    TransferConfig,
    TransferResult,
    _ModelRun,
    calibration_pool,
    load_transfer_recipe,
    run_transfer,
    train_steps,
    write_transfer_report,
)
from spikefm.models.registry import build_config, get_spec
from spikefm.train.config import load_recipe

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return generate(SyntheticConfig(n_sessions=3, units_per_session=(10, 12), n_trials=20, seed=2))


def _config(**kw):
    base = dict(models=["spint", "poyo", "not-a-model"], calibration_trials=[1, 2], pretrain_steps=3, adapt_steps=2,
                scratch_steps=2, batch_size=4, threads=0)
    return TransferConfig(**{**base, **kw})


def test_protocol_runs_each_condition_where_the_model_allows_it(data, tmp_path):
    result = run_transfer(_config(out_dir=str(tmp_path)), dataset=data, log=lambda _: None)
    assert result.held_out == "synth-2" and result.pretrain_sessions == ["synth-0", "synth-1"]
    combos = {(r.model, r.condition) for r in result.rows}
    assert {("spint", "zero_shot"), ("spint", "finetune"), ("spint", "scratch"), ("spint", "within")} <= combos
    assert {("poyo", "recalibrate"), ("poyo", "finetune"), ("poyo", "scratch"), ("ridge", "ridge")} <= combos
    assert ("poyo", "zero_shot") not in combos and ("spint", "recalibrate") not in combos
    assert all(np.isfinite(r.score) and r.metric == "decode R2" for r in result.rows)
    assert all(r.steps == 0 for r in result.rows if r.condition == "zero_shot")
    assert {r.n_trials for r in result.rows} == {1, 2}
    notes = "\n".join(result.notes)
    assert "not-a-model: not registered" in notes and "poyo: no zero_shot" in notes
    markdown, figure = write_transfer_report(result, tmp_path)
    assert "| spint | zero_shot | decode R2 |" in markdown and "k=2" in markdown
    assert figure.exists() and (tmp_path / "transfer.json").exists() and (tmp_path / "transfer.md").exists()
    assert TransferResult.from_json((tmp_path / "transfer.json").read_text()).markdown() == markdown


def test_spint_zero_shot_score_ignores_unit_order_and_names(data):
    run = _ModelRun("spint", _config(), data.recordings[:2], data.recordings[2], lambda _: None)
    model = run._build(data.recordings[:2], 0)
    target = data.recordings[2]
    perm = np.random.default_rng(1).permutation(target.n_units)
    shuffled = target.select_units(perm)
    renamed = replace(shuffled, units=replace(shuffled.units, ids=np.array([f"n{i}" for i in perm])))
    rows = calibration_pool(target)[:3].tolist()
    model.calibrate(target, rows)
    score = run._score(model, target)[0]
    model.calibrate(renamed, rows)
    assert run._score(model, renamed)[0] == pytest.approx(score, abs=1e-6)


def test_train_steps_moves_only_the_given_parameters(data):
    spec = get_spec("poyo")
    config = build_config("poyo", "tiny")
    rec = data.recordings[0]
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data([rec], config))
    tokenizer = spec.make_tokenizer(config)
    windows = [tokenizer(rec.window(t, t + 1.0)) for t in rec.trials.start[:4]]
    params = list(model.freeze_for_recalibration(rec))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, spec.objective, windows, steps=3, lr=1e-2, batch_size=2, params=params)
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed and changed <= {"unit_embedding.weight", "session_embedding.weight"}
    with pytest.raises(ValueError, match="nothing to train"):
        for p in model.parameters():
            p.requires_grad_(False)
        train_steps(model, spec.objective, windows, steps=1, lr=1e-2, batch_size=2)


def test_grouped_batches_hold_few_sessions(data):
    spec = get_spec("spint")
    config = build_config("spint", "tiny")
    tokenizer = spec.make_tokenizer(config)
    windows = [tokenizer(r.window(t, t + 1.0)) for r in data.recordings for t in r.trials.start[:6]]
    seen = []

    class Probe(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, batch):
            seen.append(set(batch.sessions))
            return {"loss": self.w.sum() * 0 + self.w ** 2}

    train_steps(Probe(), lambda out, batch: (out["loss"].sum(), {}), windows, steps=5, lr=0.1, batch_size=6,
                sessions_per_batch=2)
    assert all(len(s) == 2 for s in seen)


def test_config_and_recipes_are_validated():
    with pytest.raises(ValueError, match="unknown transfer condition"):
        TransferConfig(conditions=["zero_shot", "magic"])
    with pytest.raises(KeyError, match="unknown transfer config key"):
        TransferConfig.from_dict({"modles": ["spint"]})
    recipe = ROOT / "configs" / "transfer_synthetic.yaml"
    config = load_transfer_recipe(recipe, ["pretrain_steps=5", "synthetic.seed=3"])
    assert config.pretrain_steps == 5 and config.synthetic == {"n_sessions": 5, "latent_system": "lorenz", "seed": 3}
    assert "spint" in config.models and config.calibration_trials[0] == 1
    for name in ("spint", "neuroformer"):
        recipe = load_recipe(ROOT / "configs" / f"{name}_tiny.yaml")
        spec = get_spec(recipe.model.name)
        model_config = build_config(recipe.model.name, recipe.model.preset, **recipe.model.overrides)
        assert spec.make_tokenizer(model_config, **recipe.tokenizer) is not None


def test_held_out_must_exist_and_offer_enough_trials(data):
    with pytest.raises(KeyError, match="held_out"):
        run_transfer(_config(held_out="nope"), dataset=data, log=lambda _: None)
    with pytest.raises(ValueError, match="train trials"):
        run_transfer(_config(calibration_trials=[1000]), dataset=data, log=lambda _: None)

