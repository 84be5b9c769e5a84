"""NDT1's forward-prediction option: the last bins of every window never reach the encoder and are always scored."""

from dataclasses import replace

import torch

from spikefm.models.ndt1 import NDT1
from spikefm.models.registry import build_config, get_spec
from spikefm.tokenize.base import collate


def _setup(dataset, **overrides):
    spec = get_spec("ndt1")
    config = build_config("ndt1", "tiny", **overrides)
    rec = dataset.recordings[0]
    model = NDT1(config, **spec.sizes_from_data([rec], config))
    batch = collate([spec.make_tokenizer(config)(rec.window(t0, t0 + 1.0)) for t0 in rec.trials.start[:4]])
    return model, batch, rec


def test_forward_bins_are_hidden_from_the_input_and_scored_in_training_and_evaluation(small_dataset):
    model, batch, rec = _setup(small_dataset, forward_bins=10)
    model.eval()
    t = batch.values.shape[1]
    noisy = batch.values.clone()
    noisy[:, t - 10:] += torch.randint(1, 5, noisy[:, t - 10:].shape)
    with torch.no_grad():
        out = model(batch)
        torch.testing.assert_close(out["log_rates"], model(replace(batch, values=noisy))["log_rates"])
    assert out["loss_mask"][:, t - 10:].all()
    heldin = ~torch.as_tensor(rec.units.heldout)
    assert heldin.any() and not out["loss_mask"][:, : t - 10][..., heldin].any()  # in eval: forward bins only
    model.train()
    assert model(batch)["loss_mask"][:, t - 10:].all()


def test_without_forward_bins_the_last_bins_are_read(small_dataset):
    model, batch, _ = _setup(small_dataset)
    model.eval()
    noisy = batch.values.clone()
    noisy[:, -10:] += 3
    with torch.no_grad():
        assert not torch.allclose(model(batch)["log_rates"], model(replace(batch, values=noisy))["log_rates"])
