"""The fused AdamW is torch's AdamW: same trajectory as the default form, and refused where it cannot run."""

import pytest
import torch

from spikefm.train.optim import adamw, fuses_with


def _trajectory(fused: bool, steps: int = 20) -> list[torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.GELU(), torch.nn.Linear(16, 3))
    decay = [p for p in model.parameters() if p.ndim == 2]
    other = [p for p in model.parameters() if p.ndim < 2]
    optimizer = adamw([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}], lr=1e-2,
                      fused=fused)
    x, y = torch.randn(64, 6), torch.randn(64, 3)
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def test_fused_adamw_follows_the_default_form() -> None:
    fused = adamw([torch.nn.Parameter(torch.zeros(2))], lr=1e-3)
    assert fused.defaults["fused"] is True  # torch >= 2.4 has the CPU kernel
    for a, b in zip(_trajectory(True), _trajectory(False)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_torch_without_the_fused_kernel_gets_the_default_form(monkeypatch) -> None:
    real = torch.optim.AdamW

    def refusing(params, **kwargs):  # torch < 2.4 on CPU: fused=True raises at construction
        if kwargs.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported devices")
        return real(params, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", refusing)
    weight = torch.nn.Parameter(torch.ones(2))
    optimizer = adamw((p for p in [weight]), lr=0.1)  # a generator: read again for the fallback
    assert not optimizer.defaults.get("fused") and optimizer.param_groups[0]["params"] == [weight]
    weight.grad = torch.ones(2)
    optimizer.step()
    assert torch.all(weight < 1)  # it trains


@pytest.mark.parametrize("precision, clip, fused", [("32-true", 1.0, True), ("bf16-mixed", 0.0, True),
                                                    ("bf16-mixed", 1.0, False), ("16-mixed", 0.5, False)])
def test_clipped_mixed_precision_runs_do_not_fuse(precision: str, clip: float, fused: bool) -> None:
    # Lightning refuses gradient clipping under a mixed-precision plugin with an optimizer that unscales itself.
    assert fuses_with(precision, clip) is fused
