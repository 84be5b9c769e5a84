"""Neuroformer: chunk layout, causality, behaviour decoding that never reads behaviour, loss weights."""

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from spikefm.models.neuroformer import CONTRASTIVE_N, DT_WEIGHT, ID_WEIGHT, neuroformer_objective
from spikefm.models.registry import build_config, get_spec
from spikefm.objectives.losses import info_nce
from spikefm.tokenize.base import TokenType, collate


@pytest.fixture(scope="module")
def setup(small_dataset):
    torch.manual_seed(0)
    spec = get_spec("neuroformer")
    config = build_config("neuroformer", "tiny")
    rec = small_dataset.recordings[0]
    model = spec.model_cls(config, **spec.sizes_from_data([rec], config)).eval()
    tokenizer = spec.make_tokenizer(config)
    samples = [tokenizer(rec.window(t0 + 0.4, t0 + 0.5)) for t0 in rec.trials.start[:6]]
    return spec, model, samples, collate(samples)


def test_split_batch_recovers_each_chunk(setup):
    _, model, samples, batch = setup
    inputs = model.split_batch(batch)
    for b, sample in enumerate(samples):
        past = sample.token_type == TokenType.CONTEXT
        n_past = int(past.sum())
        assert inputs.past_ids[b, :n_past].tolist() == sample.values[past].tolist()
        assert inputs.past_dt[b, :n_past].tolist() == sample.extras["dt_token"][past].tolist()
        assert int(inputs.past_mask[b].sum()) == n_past
        cur = ~past
        n_cur = int(cur.sum())
        assert inputs.cur_ids[b, :n_cur].tolist() == sample.values[cur].tolist()
        assert inputs.cur_ids[b, 0] == model.specials["sos"] and inputs.cur_ids[b, n_cur - 1] == model.specials["eos"]
        assert int(inputs.cur_mask[b].sum()) == n_cur


def test_predictions_are_causal_in_the_current_chunk(setup):
    _, model, _, batch = setup
    inputs = model.split_batch(batch)
    n = int(inputs.cur_mask[0].sum())
    assert n >= 4, "need a few current spikes"
    hidden, _ = model.encode(inputs)
    changed = replace(inputs, cur_ids=inputs.cur_ids.clone())
    changed.cur_ids[0, n - 2] = (changed.cur_ids[0, n - 2] + 1) % model.n_units
    hidden2, _ = model.encode(changed)
    torch.testing.assert_close(hidden[0, : n - 2], hidden2[0, : n - 2])
    assert not torch.allclose(hidden[0, n - 2], hidden2[0, n - 2])


def test_behavior_decoding_never_reads_behavior_but_generation_does(setup):
    _, model, _, batch = setup
    out = model(batch)
    key = model.config.behavior_key
    shifted = replace(batch, targets={key: batch.targets[key] + 5.0})
    out2 = model(shifted)
    torch.testing.assert_close(out["behavior"], out2["behavior"])
    assert not torch.allclose(out["id_logits"], out2["id_logits"])  # the generative path is conditioned
    assert out["behavior"].shape == batch.targets[key].shape
    assert bool(out["behavior_valid"].any())


def test_objective_weights_follow_the_official_code(setup):
    spec, model, _, batch = setup
    out = model(batch)
    loss, metrics = spec.objective(out, batch)
    mask = out["target_mask"]
    ce_id = F.cross_entropy(out["id_logits"][mask], out["id_targets"][mask])
    ce_dt = F.cross_entropy(out["dt_logits"][mask], out["dt_targets"][mask])
    nce = info_nce(out["neural_embedding"], out["behavior_embedding"], temperature=0.5)
    target = batch.targets[model.config.behavior_key]
    valid = out["behavior_valid"]
    behavior = ((out["behavior"] - target)[valid] ** 2).mean()
    expected = (1 - 1 / CONTRASTIVE_N) * (ID_WEIGHT * ce_id + DT_WEIGHT * ce_dt) + nce / CONTRASTIVE_N + behavior
    torch.testing.assert_close(loss, expected)
    assert set(metrics) == {"ce_id", "ce_dt", "contrastive", "behavior_mse"}
    targets = out["id_targets"][mask]
    assert bool((targets < model.n_units + 2).all()) and model.specials["pad"] not in targets.tolist()


def test_without_contrastive_the_token_loss_is_unweighted_by_n(small_dataset):
    spec = get_spec("neuroformer")
    config = build_config("neuroformer", "tiny", contrastive=False, behavior_weight=0.0)
    rec = small_dataset.recordings[0]
    model = spec.model_cls(config, **spec.sizes_from_data([rec], config)).eval()
    batch = collate([spec.make_tokenizer(config)(rec.window(0.3, 0.4))])
    out = model(batch)
    loss, _ = neuroformer_objective(out, batch)
    mask = out["target_mask"]
    ce_id = F.cross_entropy(out["id_logits"][mask], out["id_targets"][mask])
    ce_dt = F.cross_entropy(out["dt_logits"][mask], out["dt_targets"][mask])
    expected = ID_WEIGHT * ce_id + DT_WEIGHT * ce_dt
    torch.testing.assert_close(loss, expected)


def test_one_session_and_clear_errors(setup, small_dataset):
    spec, model, _, _ = setup
    config = model.config
    with pytest.raises(ValueError, match="one session"):
        spec.sizes_from_data(small_dataset.recordings, config)
    other = small_dataset.recordings[1]
    batch = collate([spec.make_tokenizer(config)(other.window(0.3, 0.4))])
    assert other.n_units != model.n_units
    with pytest.raises(ValueError, match="built for one session"):
        model(batch)
    with pytest.raises(ValueError, match="block_size"):
        build_config("neuroformer", "tiny", block_size=2)


def test_embeddings_start_at_gpt_scale(setup):
    # The official _init_weights puts every nn.Embedding at N(0, 0.02^2). At nn.Embedding's N(0, 1)
    # the id / dt rows outweighed the positions 50:1 and, in decode_behavior, the behaviour time
    # slot outweighed the pooled neural features before the head's LayerNorm.
    _, model, _, _ = setup
    for name in ("id_embedding", "dt_embedding", "behavior_time"):
        assert 0.01 < float(getattr(model, name).weight.detach().std()) < 0.03, name
    for table in (model.position, model.past_position):
        assert 0.01 < float(table.detach().std()) < 0.03


def test_behavior_pooling_keeps_the_spike_count(setup, monkeypatch):
    # The code decodes from x.mean(dim=1) over the block padded to block_size, i.e. the sum over the
    # chunk's tokens / block_size; a masked mean drops how many spikes the chunk holds.
    _, model, _, batch = setup
    seen = {}
    monkeypatch.setattr(model, "decode_behavior", lambda pooled, positions: seen.setdefault("pooled", pooled))
    model(batch)
    inputs = model.split_batch(batch)
    _, neural = model.encode(inputs)
    expected = (neural * inputs.cur_mask[..., None]).sum(1) / model.config.block_size
    torch.testing.assert_close(seen["pooled"], expected)
