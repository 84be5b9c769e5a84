"""POYO+: multi-task queries and targets, task-embedding queries, the per-task objective, eval plumbing."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikefm.data.recording import DataError
from spikefm.eval.evaluate import predict, score
from spikefm.models.poyo_plus import TASK_KEY, MultiTaskConfig, MultiTaskTokenizer, POYOPlusConfig, parse_tasks
from spikefm.models.registry import build_config, get_spec
from spikefm.nn.perceiver import latent_grid
from spikefm.tokenize.base import collate
from spikefm.train.config import load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TASKS = {"hand_vel": "continuous:2", "condition": "class:8"}


def build(dataset):
    spec = get_spec("poyo_plus")
    config = build_config("poyo_plus", "tiny")
    torch.manual_seed(0)
    return spec.model_cls(config, **spec.sizes_from_data(dataset.recordings, config)).eval()


def tokenizer(**overrides):
    return MultiTaskTokenizer(MultiTaskConfig(tasks=TASKS, **overrides))


def test_tokenizer_writes_each_task_queries_and_labels(small_dataset):
    rec = small_dataset.recordings[0]
    t0 = float(rec.trials.start[2])
    tokens = tokenizer()(rec.window(t0, t0 + 1.0))
    task = tokens.targets[TASK_KEY][:, 0]
    assert (task == 0).sum() == 100 and (task == 1).sum() == 1  # 100 Hz velocity, one trial's move onset
    vel, cond = tokens.targets["hand_vel"], tokens.targets["condition"]
    assert np.isfinite(vel[task == 0]).all() and np.isnan(vel[task == 1]).all()
    assert np.isnan(cond[task == 0]).all() and cond[task == 1, 0] == rec.trials.columns["condition"][2]
    onset = rec.trials.columns["move_onset_time"][2] - t0
    np.testing.assert_allclose(tokens.query_timestamps[task == 1], [onset])


def test_a_session_without_a_task_has_no_such_queries(small_dataset):
    rec = small_dataset.recordings[0]
    only_other = tokenizer(task_sessions={"condition": ["synth-1"], "hand_vel": ["synth-1"]})
    tokens = only_other(rec.window(0.0, 1.0))
    assert tokens.query_timestamps.shape == (0,)
    assert tokens.targets["hand_vel"].shape == (0, 2) and tokens.targets["condition"].shape == (0, 1)
    mixed = collate([tokenizer()(rec.window(0.0, 1.0)), tokens])  # collates with a session that has both
    assert mixed.query_mask.sum(1).tolist() == [101, 0]


def test_tokenizer_errors_are_clear(small_dataset):
    rec = small_dataset.recordings[0]
    with pytest.raises(DataError, match="class_time_key"):
        tokenizer(class_time_key="go_cue_time")(rec.window(0.0, 1.0))
    with pytest.raises(DataError, match="integer labels"):
        MultiTaskTokenizer(MultiTaskConfig(tasks={"condition": "class:3"}))(rec.window(0.0, 5.0))
    with pytest.raises(ValueError, match="unknown task"):
        MultiTaskConfig(tasks=TASKS, task_sessions={"speed": ["synth-0"]})
    with pytest.raises(ValueError, match="continuous:<dim>"):
        parse_tasks({"hand_vel": "regression:2"})
    with pytest.raises(ValueError, match="behavior_key"):
        POYOPlusConfig(tasks={"condition": "class:8"})
    with pytest.raises(ValueError, match="task_weights"):
        POYOPlusConfig(task_weights={"speed": 1.0})
    assert POYOPlusConfig(task_weights={"condition": 0.1}).task_weights == {"condition": 0.1}


def test_queries_are_session_plus_task_embeddings(small_dataset):
    model = build(small_dataset)
    rec = small_dataset.recordings[1]
    batch = collate([tokenizer()(rec.window(float(t0), float(t0) + 1.0)) for t0 in rec.trials.start[:2]])
    with torch.no_grad():
        before = model(batch)
        model.task_embedding.weight[1] += 1.0  # the class task's row
        after = model(batch)
    task = before["query_task"]
    assert set(before) == {"values/hand_vel", "logits/condition", "behavior", "query_task", "task_weight"}
    assert before["logits/condition"].shape == (2, 101, 8) and before["behavior"].shape == (2, 101, 2)
    torch.testing.assert_close(after["behavior"][task == 0], before["behavior"][task == 0])
    assert not torch.allclose(after["logits/condition"][task == 1], before["logits/condition"][task == 1])


def test_objective_weights_each_task_by_windows_that_carry_it(small_dataset):
    model = build(small_dataset)
    a, b = small_dataset.recordings
    tok = tokenizer(task_sessions={"condition": ["synth-1"]})
    batch = collate([tok(a.window(0.0, 1.0)), tok(b.window(float(b.trials.start[1]), float(b.trials.start[1]) + 1.0))])
    outputs = model(batch)
    loss, metrics = get_spec("poyo_plus").objective(outputs, batch)
    task, valid = outputs["query_task"], batch.query_mask
    vel = valid & (task == 0)
    mse = F.mse_loss(outputs["behavior"][vel], batch.targets["hand_vel"][vel])
    cls = valid & (task == 1)
    ce = F.cross_entropy(outputs["logits/condition"][cls], batch.targets["condition"][cls][:, 0].long())
    torch.testing.assert_close(loss, (mse * 2 + ce * 1) / 2)  # velocity in both windows, condition in one
    torch.testing.assert_close(metrics["condition/loss"], ce.detach())
    model.task_weight[1] = 0.1  # task_weights={"condition": 0.1}
    weighted, _ = get_spec("poyo_plus").objective(model(batch), batch)
    torch.testing.assert_close(weighted, (mse * 2 + 0.1 * ce * 1) / 2)


def test_a_task_absent_from_the_batch_gets_no_gradient(small_dataset):
    model = build(small_dataset).train()
    rec = small_dataset.recordings[0]
    batch = collate([tokenizer(task_sessions={"condition": []})(rec.window(0.0, 1.0))])
    get_spec("poyo_plus").objective(model(batch), batch)[0].backward()
    unused = model.readout["condition"].weight.grad
    assert unused is None or unused.abs().sum() == 0
    assert model.readout["hand_vel"].weight.grad.abs().sum() > 0


def test_eval_scores_the_continuous_task(small_dataset):
    model = build(small_dataset)
    rec = small_dataset.recordings[0]
    predictions = predict(model, get_spec("poyo_plus").make_tokenizer(model.config), rec, split="train")
    assert predictions.behavior.shape[-1] == 2
    assert np.isfinite(score(predictions)["decode R2"])


def test_sizes_check_the_tasks_against_the_data(small_dataset):
    spec = get_spec("poyo_plus")
    with pytest.raises(ValueError, match="widths"):
        wide = build_config("poyo_plus", "tiny", tasks={"hand_vel": "continuous:3"})
        spec.sizes_from_data(small_dataset.recordings, wide)
    with pytest.raises(ValueError, match="no recording has labels"):
        spec.sizes_from_data(
            small_dataset.recordings,
            build_config("poyo_plus", "tiny", tasks={"hand_vel": "continuous:2", "choice": "class:2"}),
        )


def test_tiny_recipe_parses_and_builds(small_dataset):
    config = load_recipe(CONFIGS / "poyo_plus_tiny.yaml")
    spec = get_spec("poyo_plus")
    model_config = build_config("poyo_plus", config.model.preset, **config.model.overrides)
    assert model_config.tasks == TASKS and model_config.task_weights == {"condition": 0.1}
    tok = spec.make_tokenizer(model_config, **config.tokenizer)
    assert tok.config.task_sessions == {"condition": ("synth-2", "synth-3")}
    spec.sizes_from_data(small_dataset.recordings, model_config)


def test_indexed_token_rows_equal_per_token_embeddings(small_dataset):
    # POYO+ feeds the perceiver POYO's (unit, token type) row table + index; the result must be
    # what per-token embeddings (unit row + token-type row for every token) give.
    model = build(small_dataset)
    rec = small_dataset.recordings[-1]
    batch = collate([tokenizer()(rec.window(float(t0), float(t0) + 1.0)) for t0 in rec.trials.start[:3]])
    table, index = model._token_rows(batch)
    units = model.unit_embedding.lookup(batch.unit_keys)[batch.unit_index.clamp(min=0)]
    tokens = model.unit_embedding(units) + model.token_type_embedding(batch.token_type)  # [B, L, D]
    latents, latent_times = latent_grid(model.latent_embedding, batch.duration, step=model.config.latent_step)
    queries = torch.zeros(*batch.query_timestamps.shape, model.config.dim)
    with torch.no_grad():
        per_token = model.perceiver(tokens, batch.timestamps, latents, latent_times, queries,
                                    batch.query_timestamps, input_mask=batch.mask)
        indexed = model.perceiver(table, batch.timestamps, latents, latent_times, queries,
                                  batch.query_timestamps, input_mask=batch.mask, input_index=index)
    torch.testing.assert_close(indexed, per_token, rtol=1e-4, atol=1e-5)
