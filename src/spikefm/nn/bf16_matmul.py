"""Linear layers whose matrix products run in bfloat16, everything else in float32.

On CPUs with bfloat16 dot-product instructions (AVX-512-BF16 on AMD Zen 4 and Intel Cooper Lake;
AMX on Sapphire Rapids and later) a bf16 ``mm`` runs at about twice float32's rate (Zen 4, one
thread: ~215 vs ~96 GFLOP/s at the POYO benchmark's shapes). ``torch.autocast`` does not turn that
into a faster training step on CPU: it leaves the linears' bf16 outputs to the elementwise work
after them (rotary rotations, gating, concatenations), which runs slower in bf16 than in float32,
and the CPU flash-attention kernel is slower in bf16 too (POYO benchmark: autocast 1.29x float32's
step time). :class:`BF16Linear` casts only a linear's input and weight to bf16, multiplies, and
hands float32 back, so every other op keeps its float32 kernel:

* forward ``y = bf16(x) @ bf16(W)^T`` (float32 accumulation inside the kernel, the product rounded
  to bf16 as autocast's linears are, then widened) ``+ b`` in float32;
* backward: ``dx = bf16(dy) @ bf16(W)`` and ``dW = bf16(dy)^T @ bf16(x)`` the same way, ``db`` in
  float32. Weights, their gradients and the optimizer state stay float32 (master weights).

The saved activation is the bf16 input (half of float32's bytes). Layers with fewer than
``min_rows`` rows of input keep float32's kernel (a cast costs more than it saves on a short
product). :func:`use_bf16_matmuls` converts a model's ``nn.Linear`` layers in place; parameters,
``state_dict`` keys and checkpoints are unchanged, so a model trained this way loads into a float32
one. Measured effect in ``benchmarks/results/vs_torch_brain_zen4.md``.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BF16Linear", "bf16_linear", "cpu_has_bf16_dot", "use_bf16_matmuls", "use_float32_matmuls"]

MIN_ROWS = 256  # below this many input rows a linear keeps its float32 kernel


class _BF16LinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        x16, w16 = x.reshape(-1, x.shape[-1]).to(torch.bfloat16), weight.to(torch.bfloat16)
        ctx.save_for_backward(x16, w16)
        ctx.input_shape, ctx.has_bias = x.shape, bias is not None
        out = torch.mm(x16, w16.t()).float()
        if bias is not None:
            out += bias
        return out.view(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x16, w16 = ctx.saved_tensors
        grad2 = grad.reshape(-1, grad.shape[-1])
        g16 = grad2.to(torch.bfloat16)
        dx = torch.mm(g16, w16).float().view(ctx.input_shape) if ctx.needs_input_grad[0] else None
        dw = torch.mm(g16.t(), x16).float() if ctx.needs_input_grad[1] else None
        db = grad2.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def bf16_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear(x, weight, bias)`` with its products in bfloat16 (module docstring); float32 in and out.

    Args:
        x: [..., in] float32.
        weight: [out, in] float32.
        bias: [out] float32 or None.

    Returns:
        [..., out] float32.
    """
    if x.dtype != torch.float32 or weight.dtype != torch.float32:
        raise TypeError(f"bf16_linear takes float32 input and weight (got {x.dtype}, {weight.dtype}); "
                        "it is for float32 models (use torch.autocast for half-precision ones)")
    return _BF16LinearFunction.apply(x, weight, bias)


class BF16Linear(nn.Linear):
    """``nn.Linear`` whose products run in bfloat16 when its input has at least ``min_rows`` rows."""

    min_rows: int = MIN_ROWS

    def forward(self, x: Tensor) -> Tensor:
        if x.dtype != torch.float32 or x.device.type != "cpu" or x.numel() < self.min_rows * x.shape[-1]:
            return F.linear(x, self.weight, self.bias)
        return bf16_linear(x, self.weight, self.bias)


def use_bf16_matmuls(module: nn.Module, *, min_rows: int = MIN_ROWS) -> int:
    """Convert every ``nn.Linear`` of ``module`` to :class:`BF16Linear` in place; returns how many.

    Parameters and ``state_dict`` are untouched (a checkpoint loads either way). Warns when this
    CPU has no bf16 dot-product instructions, where bf16 products are emulated and slower than
    float32.
    """
    if min_rows < 1:
        raise ValueError(f"min_rows must be >= 1, got {min_rows}")
    if cpu_has_bf16_dot() is False:
        warnings.warn("this CPU has no bf16 dot-product instructions (avx512_bf16 / amx_bf16): bf16 matmuls are "
                      "emulated and slower than float32 here", stacklevel=2)
    converted = 0
    for layer in module.modules():
        if type(layer) is nn.Linear or type(layer) is BF16Linear:
            layer.__class__ = BF16Linear
            layer.min_rows = min_rows
            converted += 1
    return converted


def use_float32_matmuls(module: nn.Module) -> int:
    """Undo :func:`use_bf16_matmuls`: every :class:`BF16Linear` of ``module`` becomes ``nn.Linear``."""
    converted = 0
    for layer in module.modules():
        if type(layer) is BF16Linear:
            layer.__class__ = nn.Linear
            layer.__dict__.pop("min_rows", None)
            converted += 1
    return converted


@functools.cache
def cpu_has_bf16_dot() -> bool | None:
    """Whether this CPU lists bf16 dot-product instructions (Linux ``/proc/cpuinfo``); None where unknown."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), None)
    return None if flags is None else bool({"avx512_bf16", "amx_bf16"} & set(flags))
