"""POSSM: causality, the decoder's 3-chunk context, packed = padded, presets, recalibration.

Streaming equals the offline pass: tests/realtime/test_stream.py. Chunking: tests/nn/test_nn_chunking.py;
the chunked pipeline's pieces: tests/nn/test_nn_chunked.py; outputs as before the move to nn/chunked:
tests/models/test_possm_reference.py.
"""

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from spikefm.models.possm import POSSM, POSSMConfig
from spikefm.models.registry import build_config, get_spec
from spikefm.nn.chunked import query_context_mask
from spikefm.tokenize.base import collate
from spikefm.train.config import load_recipe

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def build(dataset, **overrides):
    spec = get_spec("possm")
    config = build_config("possm", "tiny", **overrides)
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data(dataset.recordings, config)).eval()
    return model, spec.make_tokenizer(config)


def windows(dataset, n=3):
    return [rec.window(t0, t0 + 1.0) for rec in dataset.recordings for t0 in rec.trials.start[:n]]


def test_query_sees_its_chunk_and_two_before(small_dataset):
    model, _ = build(small_dataset)
    config = model.config  # the read-out window forward uses: 50 ms chunks, context_chunks = 3
    mask = query_context_mask(torch.tensor([0.0, 0.12, 0.49]), config.chunk, 10, config.context_chunks)
    assert mask[0].nonzero().flatten().tolist() == [0]
    assert mask[1].nonzero().flatten().tolist() == [0, 1, 2]
    assert mask[2].nonzero().flatten().tolist() == [7, 8, 9]


def test_outputs_are_causal_in_chunks(small_dataset):
    model, tokenizer = build(small_dataset)
    tokens = tokenizer(small_dataset.recordings[0].window(0.0, 1.0))
    batch = collate([tokens], pack=True)
    keep = tokens.timestamps < 0.5  # drop every spike from chunk 10 on
    fields = ("values", "timestamps", "unit_index", "token_type", "mask")
    cut = collate([replace(tokens, **{name: getattr(tokens, name)[keep] for name in fields})], pack=True)
    with torch.no_grad():
        full, partial = model(batch)["behavior"][0], model(cut)["behavior"][0]  # [Q, D]
    before = batch.query_timestamps[0] < 0.5
    torch.testing.assert_close(full[before], partial[before], atol=1e-6, rtol=1e-6)
    assert not torch.allclose(full[~before], partial[~before])


def test_packed_and_padded_batches_agree(small_dataset):
    model, tokenizer = build(small_dataset)
    samples = [tokenizer(w) for w in windows(small_dataset)]
    with torch.no_grad():
        packed = model(collate(samples, pack=True))["behavior"]
        padded = model(collate(samples, pack=False))["behavior"]
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)


def test_ssm_core_trains(small_dataset):
    model, tokenizer = build(small_dataset, core="ssm")
    batch = collate([tokenizer(w) for w in windows(small_dataset)], pack=True)
    model.train()
    loss, _ = get_spec("possm").objective(model(batch), batch)
    loss.backward()
    assert torch.isfinite(loss) and model.core.layers[0].in_proj.weight.grad.abs().sum() > 0


def test_published_presets_build_with_their_sizes():
    keys, sessions = [f"s/{i}" for i in range(10)], ["s"]
    full = POSSM(build_config("possm", "possm_gru_9m"), unit_keys=keys, sessions=sessions, behavior_dim=2)
    assert (full.config.dim, full.core.gru.hidden_size, full.core.gru.num_layers) == (256, 512, 4)
    n_params = sum(p.numel() for p in full.parameters())
    assert 7e6 < n_params < 10e6  # "POSSM-GRU 9M" (the rest of the 9M are unit embeddings of many units)
    small = POSSM(build_config("possm", "possm_small"), unit_keys=keys, sessions=sessions, behavior_dim=2)
    assert (small.config.dim, small.core.gru.hidden_size, small.core.gru.num_layers) == (64, 256, 1)


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="core"):
        POSSMConfig(core="lstm")
    with pytest.raises(ValueError, match="chunk"):
        POSSMConfig(chunk=0.0)
    with pytest.raises(ValueError, match=">= 1"):
        POSSMConfig(context_chunks=0)


def test_recalibration_trains_only_the_new_session_rows(small_dataset):
    old, new = small_dataset.recordings
    spec = get_spec("possm")
    config = build_config("possm", "tiny")
    model = spec.model_cls(config, **spec.sizes_from_data([old], config))
    model.add_session(new)
    params = model.freeze_for_recalibration(new)
    batch = collate([spec.make_tokenizer(config)(new.window(0.0, 1.0))], pack=True)
    spec.objective(model(batch), batch)[0].backward()
    grad = params[0].grad
    new_rows = model.unit_embedding.lookup(new.unit_keys())
    old_rows = model.unit_embedding.lookup(old.unit_keys())
    assert grad[new_rows].abs().sum() > 0 and grad[old_rows].abs().sum() == 0
    assert all(not p.requires_grad for p in model.core.parameters())


def test_tiny_recipe_parses_and_builds(small_dataset):
    config = load_recipe(CONFIGS / "possm_tiny.yaml")
    assert config.model.name == "possm" and config.data.window == 1.0
    model_config = build_config("possm", config.model.preset, **config.model.overrides)
    get_spec("possm").sizes_from_data(small_dataset.recordings, model_config)


def test_token_type_rows_start_at_the_unit_rows_scale(small_dataset):
    # The same bug as POYO's (tests/models/test_poyo.py): a N(0, 1) token-type row outweighs the
    # N(0, 0.02^2) unit rows 50:1 and, after LayerNorm, hides which unit spiked.
    model, _ = build(small_dataset)
    for table in (model.unit_embedding, model.session_embedding, model.token_type_embedding):
        assert 0.01 < float(table.weight.detach().std()) < 0.03, type(table).__name__
