"""NDT2: masks respected, patch layout, causal attention, decoding head, context-only adaptation."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spikefm.eval.context_adaptation import adapt_context
from spikefm.models.ndt2 import NDT2, ndt2_objective
from spikefm.models.registry import build_config, get_spec
from spikefm.tokenize.base import collate
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer

QUIET = {"dropout": 0.0}


def _setup(dataset, name="ndt2", recordings=None, **overrides):
    spec = get_spec(name)
    recordings = recordings or dataset.recordings
    config = build_config(name, "tiny", **overrides)
    model = NDT2(config, **spec.sizes_from_data(recordings, config))
    tokenizer = spec.make_tokenizer(config)
    windows = [rec.window(t0, t0 + 1.0) for rec in recordings for t0 in rec.trials.start[:4]]
    return model, collate([tokenizer(w) for w in windows]), tokenizer


def _heldout_patch_channels(model, batch):
    return model._heldout_channels(batch) & batch.extras["channel_mask"].bool()


def test_patches_unpatchify_to_the_binned_counts_in_unit_order(small_dataset):
    model, batch, _ = _setup(small_dataset)
    model.eval()
    with torch.no_grad():
        counts = model(batch)["counts"]  # [B, T, U]
    binned = BinnedTokenizer(BinnedConfig(bin_size=0.02, query="none"))
    rec = small_dataset.recordings[1]
    expected = binned(rec.window(rec.trials.start[0], rec.trials.start[0] + 1.0)).values
    assert torch.equal(counts[4, :, : rec.n_units], torch.as_tensor(expected, dtype=torch.float32))
    assert not counts[0, :, small_dataset.recordings[0].n_units :].any()  # padding columns stay empty


def test_heldout_channels_never_reach_the_prediction_in_eval(small_dataset):
    model, batch, _ = _setup(small_dataset)
    model.eval()
    held = _heldout_patch_channels(model, batch)
    assert held.any()
    noisy = replace(batch, values=torch.where(held, batch.values + 4, batch.values))
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["log_rates"], model(noisy)["log_rates"])


def test_hidden_tokens_and_heldout_channels_never_reach_the_prediction_in_training(small_dataset):
    model, batch, _ = _setup(small_dataset, **QUIET)
    model.train()
    torch.manual_seed(2)
    first = model(batch)
    torch.manual_seed(2)
    hidden_tokens = torch.zeros(batch.values.shape[1], dtype=torch.bool)
    order = torch.randperm(batch.values.shape[1])  # the same shuffle the model drew
    hidden_tokens[order[int(0.5 * len(order)) :]] = True
    perturb = hidden_tokens[None, :, None] | _heldout_patch_channels(model, batch)
    torch.manual_seed(2)
    second = model(replace(batch, values=torch.where(perturb, batch.values + 4, batch.values)))
    torch.testing.assert_close(first["log_rates"], second["log_rates"])
    torch.manual_seed(2)
    third = model(replace(batch, values=torch.where(~perturb, batch.values + 4, batch.values)))
    assert not torch.allclose(first["log_rates"], third["log_rates"])  # visible tokens do matter
    # The loss scores every channel of hidden tokens and held-out channels of visible ones.
    assert first["loss_mask"].any() and first["loss_mask"].float().mean() < 0.8


def test_causal_encoder_never_looks_ahead(small_dataset):
    model, batch, _ = _setup(small_dataset, causal=True)
    model.eval()
    future = batch.extras["patch_time"] >= 25
    noisy = replace(batch, values=torch.where(future[..., None], batch.values + 3, batch.values))
    with torch.no_grad():
        a, b = model(batch)["log_rates"], model(noisy)["log_rates"]
    torch.testing.assert_close(a[:, :25], b[:, :25])
    assert not torch.allclose(a[:, 25:], b[:, 25:])


def test_decoder_reads_behaviour_at_every_bin_without_heldout_units(small_dataset):
    model, batch, _ = _setup(small_dataset, name="ndt2_decoder")
    model.eval()
    with torch.no_grad():
        behavior = model(batch)["behavior"]
        held = _heldout_patch_channels(model, batch)
        noisy = model(replace(batch, values=torch.where(held, batch.values + 4, batch.values)))["behavior"]
    assert behavior.shape == (batch.batch_size, 50, 2) == batch.targets["hand_vel"].shape
    torch.testing.assert_close(behavior, noisy)


def test_decoder_init_from_copies_the_pretrained_encoder(small_dataset, tmp_path):
    pretrained, _, _ = _setup(small_dataset)
    path = tmp_path / "ndt2.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in pretrained.state_dict().items()}}, path)
    decoder, _, _ = _setup(small_dataset, name="ndt2_decoder", init_from=str(path))
    for name, value in pretrained.encoder.state_dict().items():
        torch.testing.assert_close(decoder.encoder.state_dict()[name], value)
    torch.testing.assert_close(decoder.count_embed.weight, pretrained.count_embed.weight)
    with pytest.raises(FileNotFoundError, match="init_from"):
        _setup(small_dataset, name="ndt2_decoder", init_from=str(tmp_path / "missing.ckpt"))


def test_adapt_context_learns_only_the_new_session_row(small_dataset):
    old, new = small_dataset.recordings
    model, _, tokenizer = _setup(small_dataset, recordings=[old])
    model.add_session(new)  # adapt_context adds it too; adding first lets us see the row's start
    before = {k: v.clone() for k, v in model.state_dict().items() if isinstance(v, torch.Tensor)}
    torch.manual_seed(0)
    result = adapt_context(model, new, tokenizer, ndt2_objective, steps=6, lr=0.05, batch_size=8)
    assert len(result.losses) == 6 and all(np.isfinite(result.losses))
    assert result.n_trainable == model.config.dim  # one session row; the subject is shared
    after = model.state_dict()
    row = model.context.tables["session"].lookup([new.session])
    for name, value in before.items():
        if name == "context.tables.session.weight":
            keep = torch.ones(value.shape[0], dtype=torch.bool)
            keep[row] = False
            torch.testing.assert_close(after[name][keep], value[keep])  # the old sessions' rows
            assert not torch.allclose(after[name][row], value[row])  # the new row learned
        else:
            torch.testing.assert_close(after[name], value, msg=f"{name} changed during context adaptation")
    assert all(p.requires_grad for p in model.parameters())  # trainability restored
    assert model.context.tables["session"].trainable_keys is None


def test_adapted_session_changes_its_predictions(small_dataset):
    old, new = small_dataset.recordings
    model, _, tokenizer = _setup(small_dataset, recordings=[old])
    model.add_session(new)
    batch = collate([tokenizer(new.window(t0, t0 + 1.0)) for t0 in new.trials.start[:4]])
    model.eval()
    with torch.no_grad():
        initial = model(batch)["log_rates"]
    adapt_context(model, new, tokenizer, ndt2_objective, steps=4, lr=0.1, batch_size=8)
    with torch.no_grad():
        assert not torch.allclose(initial, model(batch)["log_rates"])
