"""STNDT: masks respected (hidden and held-out inputs never reach the prediction), masking, loss."""

import pytest
import torch

from spikefm.models.registry import build_config, get_spec
from spikefm.models.stndt import STNDT, mask_entries, stndt_objective
from spikefm.objectives.losses import nt_xent, poisson_nll
from spikefm.tokenize.base import collate


def _setup(dataset, **overrides):
    spec = get_spec("stndt")
    config = build_config("stndt", "tiny", **overrides)
    rec = dataset.recordings[0]
    model = STNDT(config, **spec.sizes_from_data([rec], config))
    tokenizer = spec.make_tokenizer(config)
    batch = collate([tokenizer(rec.window(t0, t0 + 1.0)) for t0 in rec.trials.start[:6]])
    return model, batch, rec


def _with_values(batch, values):
    from dataclasses import replace

    return replace(batch, values=values)


def test_heldout_units_never_reach_the_prediction_in_eval(small_dataset):
    model, batch, rec = _setup(small_dataset)
    model.eval()
    heldout = torch.as_tensor(rec.units.heldout)
    noisy = batch.values.clone()
    noisy[..., heldout] += torch.randint(1, 5, noisy[..., heldout].shape)
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["log_rates"], model(_with_values(batch, noisy))["log_rates"])


def test_hidden_entries_never_reach_the_prediction_in_training(small_dataset):
    model, batch, rec = _setup(small_dataset, dropout=0.0, dropout_embedding=0.0, dropout_rates=0.0,
                               mask_random_ratio=0.0)
    model.train()
    torch.manual_seed(1)
    first = model(batch)
    hidden = first["loss_mask"]
    assert hidden[..., ~torch.as_tensor(rec.units.heldout)].any()  # some held-in entries were hidden
    noisy = torch.where(hidden, batch.values + 3, batch.values)
    torch.manual_seed(1)
    second = model(_with_values(batch, noisy))
    torch.testing.assert_close(first["log_rates"], second["log_rates"])
    torch.testing.assert_close(first["loss_mask"], second["loss_mask"])
    # The check has power: changing a visible entry does change the predictions.
    visible = ~hidden & batch.mask[..., None]
    torch.manual_seed(1)
    third = model(_with_values(batch, torch.where(visible, batch.values + 3, batch.values)))
    assert not torch.allclose(first["log_rates"], third["log_rates"])


def test_mask_entries_hides_only_eligible_entries_at_the_requested_rates():
    torch.manual_seed(0)
    x = torch.full((64, 50, 40), 2.0)
    eligible = torch.ones_like(x, dtype=torch.bool)
    eligible[..., :10] = False
    masked, hidden = mask_entries(x, 0.25, zero_ratio=0.5, random_ratio=0.5, eligible=eligible)
    assert not hidden[..., :10].any()
    assert abs(hidden[..., 10:].float().mean().item() - 0.25) < 0.01
    # Half zeroed; of the rest, half get a uniform draw from 0..2 (so a third of those are 0 too).
    zero_fraction = ((masked == 0) & hidden).sum().item() / hidden.sum().item()
    assert abs(zero_fraction - (0.5 + 0.25 / 3)) < 0.02
    changed = masked != x
    assert not (changed & ~hidden).any()  # only hidden entries are ever altered
    assert masked.max() <= 2 and masked.min() >= 0  # random counts lie in 0..max


def test_objective_is_masked_poisson_plus_weighted_nt_xent_of_both_embeddings(small_dataset):
    model, batch, _ = _setup(small_dataset)
    model.train()
    torch.manual_seed(0)
    outputs = model(batch)
    loss, metrics = stndt_objective(outputs, batch)
    nll = poisson_nll(outputs["log_rates"], outputs["counts"], outputs["loss_mask"])
    t, s = outputs["contrast_temporal"], outputs["contrast_spatial"]
    expected = nll + 0.1 * (nt_xent(t[0], t[1], 0.07) + nt_xent(s[0], s[1], 0.07))
    torch.testing.assert_close(loss, expected)
    assert "contrast" in metrics and t.shape == (2, batch.batch_size, 50 * rec_units(batch))


def rec_units(batch):
    return batch.values.shape[-1]


def test_eval_scores_only_heldout_units_and_has_no_contrast(small_dataset):
    model, batch, rec = _setup(small_dataset)
    model.eval()
    with torch.no_grad():
        outputs = model(batch)
    assert "contrast_temporal" not in outputs
    assert torch.equal(outputs["loss_mask"].any((0, 1)), torch.as_tensor(rec.units.heldout))


def test_wrong_window_length_is_a_clear_error(small_dataset):
    model, batch, _ = _setup(small_dataset, n_bins=40)
    with pytest.raises(ValueError, match="n_bins"):
        model(batch)


def test_published_preset_carries_stndt_mc_maze_values():
    config = build_config("stndt", "mc_maze")
    assert (config.depth, config.heads, config.ffn_dim) == (4, 2, 128)
    assert (config.contrast_weight, config.temperature, config.contrast_mask_ratio) == (0.1, 0.07, 0.05)
    assert (config.mask_ratio, config.context_forward, config.context_backward) == (0.25, 4, 8)
