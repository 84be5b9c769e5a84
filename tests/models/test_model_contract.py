"""One contract for every registered model: tiny preset builds, tokenizer and collate compose,
forward + backward give a finite loss, and a few dozen steps make the loss fall."""

from functools import partial

import pytest
import torch

from spikefm.models.registry import build_config, get_spec, list_models
from spikefm.tokenize.base import collate


def _setup(name, dataset):
    spec = get_spec(name)
    recordings = dataset.recordings if spec.multi_session else dataset.recordings[:1]
    config = build_config(name, "tiny")
    model = spec.model_cls(config, **spec.sizes_from_data(recordings, config))
    tokenizer = spec.make_tokenizer(config)
    windows = [rec.window(t0, t0 + 1.0) for rec in recordings for t0 in rec.trials.start[:8]]
    batch = partial(collate, pack=spec.pack)([tokenizer(w) for w in windows])
    return spec, model, batch


@pytest.mark.parametrize("name", list_models())
def test_tiny_model_forward_backward_is_finite(name, small_dataset):
    spec, model, batch = _setup(name, small_dataset)
    torch.manual_seed(0)
    loss, metrics = spec.objective(model(batch), batch)
    assert torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_tiny_model_loss_falls_in_a_few_dozen_steps(name, small_dataset):
    torch.manual_seed(0)  # the initial weights too: they depended on the random draws of the tests run before
    spec, model, batch = _setup(name, small_dataset)
    torch.manual_seed(0)

    def eval_loss():
        model.eval()
        with torch.no_grad():
            value = spec.objective(model(batch), batch)[0].item()
        model.train()
        return value

    before = eval_loss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(40):
        optimizer.zero_grad()
        spec.objective(model(batch), batch)[0].backward()
        optimizer.step()
    after = eval_loss()
    assert after < 0.9 * before, f"{name}: loss {before:.4f} -> {after:.4f}"
