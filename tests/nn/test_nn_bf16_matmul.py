"""bf16 linears: float32 in and out, products in bf16, same parameters; a recipe can train with them."""

import csv
import warnings

import pytest
import torch
from torch import nn

from spikefm.nn import bf16_matmul
from spikefm.nn.bf16_matmul import BF16Linear, bf16_linear, use_bf16_matmuls, use_float32_matmuls
from spikefm.train.config import RunConfig
from spikefm.train.fit import fit


@pytest.fixture(autouse=True)
def _quiet_on_cpus_without_bf16(monkeypatch):
    monkeypatch.setattr(bf16_matmul, "cpu_has_bf16_dot", lambda: True)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).detach().norm() / b.detach().norm())


def test_bf16_linear_matches_float32_to_bf16_precision_forward_and_backward() -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 300, 48, requires_grad=True)
    weight, bias = torch.randn(40, 48, requires_grad=True), torch.randn(40, requires_grad=True)
    grad = torch.randn(3, 300, 40)
    ours = bf16_linear(x, weight, bias)
    reference = nn.functional.linear(x, weight, bias)
    assert ours.dtype == torch.float32 and ours.shape == reference.shape
    assert 0 < _relative(ours, reference) < 1e-2  # bf16 products (not float32's), within bf16's precision
    for a, b in zip(torch.autograd.grad(ours, (x, weight, bias), grad),
                    torch.autograd.grad(reference, (x, weight, bias), grad)):
        assert a.dtype == torch.float32 and a.shape == b.shape and _relative(a, b) < 1e-2
    # the bias gradient is a float32 sum: exact
    torch.testing.assert_close(torch.autograd.grad(bf16_linear(x, weight, bias), bias, grad)[0], grad.sum((0, 1)))


def test_bf16_linear_without_bias_and_with_frozen_weight() -> None:
    x, weight = torch.randn(512, 16, requires_grad=True), torch.randn(8, 16)
    dx, = torch.autograd.grad(bf16_linear(x, weight).sum(), x)
    assert _relative(dx, torch.ones(512, 8) @ weight) < 1e-2


def test_bf16_linear_refuses_half_precision_inputs() -> None:
    with pytest.raises(TypeError, match="float32"):
        bf16_linear(torch.randn(4, 3, dtype=torch.bfloat16), torch.randn(2, 3))


def test_conversion_keeps_parameters_and_short_inputs_keep_float32() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Sequential(nn.Linear(32, 4)))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    short, long = torch.randn(10, 8), torch.randn(600, 8)
    expected_short, expected_long = model(short), model(long)
    assert use_bf16_matmuls(model, min_rows=256) == 2
    assert all(type(m) is BF16Linear for m in model.modules() if isinstance(m, nn.Linear))
    assert model.state_dict().keys() == before.keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    torch.testing.assert_close(model(short), expected_short, rtol=0, atol=0)  # 10 rows < min_rows: float32 kernel
    assert 0 < _relative(model(long), expected_long) < 2e-2
    assert use_float32_matmuls(model) == 2 and all(type(m) is nn.Linear for m in model.modules()
                                                   if isinstance(m, nn.Linear))
    torch.testing.assert_close(model(long), expected_long, rtol=0, atol=0)
    with pytest.raises(ValueError, match="min_rows"):
        use_bf16_matmuls(model, min_rows=0)


def test_conversion_warns_where_the_cpu_emulates_bf16(monkeypatch) -> None:
    monkeypatch.setattr(bf16_matmul, "cpu_has_bf16_dot", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        use_bf16_matmuls(nn.Linear(2, 2))
    monkeypatch.setattr(bf16_matmul, "cpu_has_bf16_dot", lambda: None)  # unknown CPU: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        use_bf16_matmuls(nn.Linear(2, 2))


def test_a_recipe_trains_with_bf16_matmuls_and_its_loss_falls(tmp_path, monkeypatch) -> None:
    calls = []
    monkeypatch.setattr(bf16_matmul, "bf16_linear", lambda *args: calls.append(1) or bf16_linear(*args))
    recipe = RunConfig.from_dict({
        "name": "poyo", "model": {"name": "poyo"},
        "data": {"synthetic": {"n_sessions": 1, "units_per_session": [20, 20], "n_trials": 40}},
        "trainer": {"max_steps": 30, "batch_size": 8, "val_every": 30, "warmup_steps": 2, "lr": 3e-3,
                    "precision": "bf16-matmul", "out_dir": str(tmp_path), "progress": False, "threads": 1},
    })
    result = fit(recipe)
    linears = [m for m in result.module.modules() if isinstance(m, nn.Linear)]
    assert linears and all(type(m) is BF16Linear for m in linears)
    rows = list(csv.DictReader(open(result.run_dir / "logs" / "metrics.csv")))
    losses = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    assert len(losses) >= 6 and sum(losses[-3:]) < sum(losses[:3])
    assert calls  # the bf16 products ran (the batch's latents and queries exceed min_rows)


def test_bf16_matmul_precision_is_for_cpu_runs() -> None:
    with pytest.raises(ValueError, match="CPU runs"):
        RunConfig.from_dict({"trainer": {"precision": "bf16-matmul", "accelerator": "gpu"}})
