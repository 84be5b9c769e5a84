"""Recurrent cores for real-time decoding (POSSM): a GRU and a diagonal selective SSM.

Both follow one protocol, :class:`RecurrentCore`:

* ``forward(x [B, T, D], state=None) -> (y [B, T, Do], state)`` for a whole sequence,
* ``step(x_t [B, D], state) -> (y_t [B, Do], state)`` for one incoming chunk,
* ``initial_state(batch, device, dtype) -> state`` (zeros),

and ``step`` run over a sequence gives the same outputs as ``forward`` on it, so a model
trained on full windows streams with a fixed-size state.

Shape legend: B batch, T steps, D input width, Do output width, S SSM state size,
E expanded width, K layers.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikefm.nn.attention import RMSNorm
from spikefm.nn.windowed_core import WindowedTransformer

__all__ = ["RecurrentCore", "GRU", "SelectiveSSM", "selective_scan", "CORES", "make_core", "gru_weights", "step_core"]

CORES = ("gru", "ssm", "transformer")


@runtime_checkable
class RecurrentCore(Protocol):
    """What a streaming model needs from its recurrent core."""

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]: ...

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]: ...

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor: ...


class GRU(nn.Module):
    """Multi-layer GRU (the POSSM port's core: 4 x 512 full, 1 x 256 small).

    Args:
        input_dim: D.
        hidden_dim: Do, the hidden size and output width.
        num_layers: K stacked GRU layers.
        dropout: between layers (training only; ``step`` matches ``forward`` in eval mode).

    Shapes:
        forward(x [B, T, D], state [K, B, Do] | None) -> (y [B, T, Do], state [K, B, Do])
        step(x_t [B, D], state [K, B, Do]) -> (y_t [B, Do], state [K, B, Do])
    """

    def __init__(self, *, input_dim: int, hidden_dim: int, num_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden_dim, self.num_layers = hidden_dim, num_layers
        self.gru = nn.GRU(input_dim, hidden_dim, num_layers=num_layers, batch_first=True, dropout=dropout)

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(self.num_layers, batch, self.hidden_dim, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        return self.gru(x, state)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        y, state = self.gru(x_t[:, None], state)  # [B, 1, Do]
        return y[:, 0], state


def selective_scan(log_decay: Tensor, drive: Tensor, h0: Tensor, *, chunk_size: int = 16) -> Tensor:
    """All states of ``h_t = exp(log_decay_t) * h_{t-1} + drive_t``, chunk-parallel.

    Within a chunk of length C, ``h_t = sum_{s<=t} exp(L_t - L_s) drive_s + exp(L_t) h_0``
    with ``L`` the within-chunk cumulative ``log_decay``; only differences ``L_t - L_s <= 0``
    are exponentiated, so nothing overflows. Chunks run in sequence carrying ``h``.
    ``chunk_size=1`` is the plain sequential recurrence; larger chunks trade memory
    (C x per-step) for fewer Python steps.

    Args:
        log_decay: [B, T, ...] log of the per-step decay (<= 0 for a stable system).
        drive: [B, T, ...] input added at each step.
        h0: [B, ...] state before step 0.
        chunk_size: C >= 1.

    Returns:
        [B, T, ...] the state after every step.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    states, h = [], h0
    for start in range(0, log_decay.shape[1], chunk_size):
        cum = log_decay[:, start : start + chunk_size].cumsum(1)  # [B, C, ...]
        c = cum.shape[1]
        diff = cum[:, :, None] - cum[:, None, :]  # [B, C(t), C(s), ...] = L_t - L_s
        causal = torch.ones(c, c, dtype=torch.bool, device=cum.device).tril()
        causal = causal.view(1, c, c, *([1] * (cum.ndim - 2)))
        weights = torch.exp(diff.masked_fill(~causal, float("-inf")))  # [B, C, C, ...]
        inside = (weights * drive[:, None, start : start + chunk_size]).sum(2)  # [B, C, ...] sum over s
        chunk = inside + torch.exp(cum) * h[:, None]  # [B, C, ...]
        states.append(chunk)
        h = chunk[:, -1]
    return torch.cat(states, dim=1) if states else drive.new_zeros(drive.shape)


class _SSMLayer(nn.Module):
    """One residual Mamba-style layer without the convolution (so ``step`` needs only ``h``).

    ``u, z = in_proj(norm(x))``; ``dt = softplus(W_dt u + b)``, ``B = W_B u``, ``C = W_C u``;
    ``h_t = exp(dt A) h_{t-1} + dt B u_t`` with diagonal ``A = -exp(A_log)`` [E, S];
    ``y = (C . h + D u) * silu(z)``; ``x + out_proj(y)``.
    """

    def __init__(self, *, dim: int, state_dim: int, inner_dim: int) -> None:
        super().__init__()
        self.norm = RMSNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * inner_dim, bias=False)
        self.dt_proj = nn.Linear(inner_dim, inner_dim)
        self.bc_proj = nn.Linear(inner_dim, 2 * state_dim, bias=False)
        self.out_proj = nn.Linear(inner_dim, dim, bias=False)
        # S4D-real init A_n = -(n + 1); dt bias so softplus(b) is log-uniform in [1e-3, 1e-1] (Mamba).
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state_dim + 1, dtype=torch.float32)).repeat(inner_dim, 1))
        self.D = nn.Parameter(torch.ones(inner_dim))
        dt = torch.exp(torch.rand(inner_dim) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def _project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        u, z = self.in_proj(self.norm(x)).chunk(2, dim=-1)  # [..., E] each
        dt = F.softplus(self.dt_proj(u))  # [..., E]
        b, c = self.bc_proj(u).chunk(2, dim=-1)  # [..., S] each
        log_decay = dt[..., None] * -torch.exp(self.A_log)  # [..., E, S]
        drive = (dt * u)[..., None] * b[..., None, :]  # [..., E, S]
        return u, z, c, log_decay, drive

    def _readout(self, x: Tensor, h: Tensor, u: Tensor, z: Tensor, c: Tensor) -> Tensor:
        y = (h * c[..., None, :]).sum(-1) + self.D * u  # [..., E]
        return x + self.out_proj(y * F.silu(z))

    def forward(self, x: Tensor, h0: Tensor, chunk_size: int) -> tuple[Tensor, Tensor]:
        u, z, c, log_decay, drive = self._project(x)  # x [B, T, D]
        h = selective_scan(log_decay, drive, h0, chunk_size=chunk_size)  # [B, T, E, S]
        return self._readout(x, h, u, z, c), h[:, -1]

    def step(self, x_t: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
        u, z, c, log_decay, drive = self._project(x_t)  # x_t [B, D]
        h = torch.exp(log_decay) * h + drive  # [B, E, S]
        return self._readout(x_t, h, u, z, c), h


class SelectiveSSM(nn.Module):
    """Stack of diagonal selective state-space layers (S4D / Mamba-style, plain PyTorch).

    Input-dependent step ``dt``, diagonal ``A``, input-dependent ``B`` and ``C``; each layer is
    residual with a pre-RMSNorm, and the stack ends with an RMSNorm. The full pass uses the
    chunk-parallel :func:`selective_scan`; ``step`` is the exact one-step recurrence.

    Args:
        dim: D, input and output width.
        state_dim: S, state size per channel (Mamba: 16).
        expand: E = ``expand * dim`` inner channels.
        num_layers: K layers.
        chunk_size: scan chunk length for ``forward``.

    Shapes:
        forward(x [B, T, D], state [K, B, E, S] | None) -> (y [B, T, D], state [K, B, E, S])
        step(x_t [B, D], state [K, B, E, S]) -> (y_t [B, D], state [K, B, E, S])
    """

    def __init__(
        self, *, dim: int, state_dim: int = 16, expand: int = 2, num_layers: int = 1, chunk_size: int = 16
    ) -> None:
        super().__init__()
        self.inner_dim, self.state_dim, self.chunk_size = expand * dim, state_dim, chunk_size
        self.layers = nn.ModuleList(
            _SSMLayer(dim=dim, state_dim=state_dim, inner_dim=self.inner_dim) for _ in range(num_layers)
        )
        self.norm = RMSNorm(dim)

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(len(self.layers), batch, self.inner_dim, self.state_dim, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        if x.shape[1] == 0:  # no steps: nothing to output, state unchanged
            return self.norm(x), state
        finals = []
        for layer, h0 in zip(self.layers, state):
            x, h = layer(x, h0, self.chunk_size)  # [B, T, D], [B, E, S]
            finals.append(h)
        return self.norm(x), torch.stack(finals)  # [K, B, E, S]

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        finals = []
        for layer, h in zip(self.layers, state):
            x_t, h = layer.step(x_t, h)  # [B, D], [B, E, S]
            finals.append(h)
        return self.norm(x_t), torch.stack(finals)


def make_core(
    kind: str, *, input_dim: int, hidden_dim: int, layers: int, dropout: float = 0.0, state_dim: int = 16,
    expand: int = 2, window: int = 20,
) -> tuple[nn.Module, int]:
    """A recurrent core by name and its output width.

    Args:
        kind: ``"gru"`` (:class:`GRU`, ``hidden_dim`` wide, ``dropout`` between layers), ``"ssm"``
            (:class:`SelectiveSSM`, as wide as its input, ``state_dim`` / ``expand``) or
            ``"transformer"`` (:class:`~spikefm.nn.windowed_core.WindowedTransformer` over the last
            ``window`` steps, ``hidden_dim`` wide, 64-wide heads, ``dropout`` on its residuals).
        input_dim: width of each step's input. layers: stacked layers.

    Returns:
        (core, output width).
    """
    if kind not in CORES:
        raise ValueError(f"recurrent core must be one of {CORES}, got {kind!r}")
    if kind == "gru":
        dropout = dropout if layers > 1 else 0.0  # nn.GRU drops only between layers
        return GRU(input_dim=input_dim, hidden_dim=hidden_dim, num_layers=layers, dropout=dropout), hidden_dim
    if kind == "transformer":
        heads = max(1, hidden_dim // 64)
        core = WindowedTransformer(input_dim=input_dim, hidden_dim=hidden_dim, layers=layers, heads=heads,
                                   window=window, dropout=dropout)  # fmt: skip
        return core, hidden_dim
    return SelectiveSSM(dim=input_dim, state_dim=state_dim, expand=expand, num_layers=layers), input_dim


def gru_weights(core: nn.Module) -> tuple[tuple[Tensor, ...], ...] | None:
    """Per layer ``(w_ih, w_hh, b_ih, b_hh)`` of a :class:`GRU` core (for :func:`step_core`); None otherwise."""
    if not isinstance(core, GRU):
        return None
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
    return tuple(tuple(getattr(core.gru, f"{n}_l{layer}") for n in names) for layer in range(core.num_layers))


def step_core(
    core: nn.Module, x: Tensor, state: Tensor, weights: tuple[tuple[Tensor, ...], ...] | None
) -> tuple[Tensor, Tensor]:
    """One step of a core; for a GRU given its :func:`gru_weights`, ``torch.gru_cell`` per layer
    (the same maths as ``core.step`` with less overhead: streaming pays it every chunk).

    Shapes:
        x [B, D], state as the core's -> (y [B, Do], state)
    """
    if weights is None:
        return core.step(x, state)
    hidden = []
    for layer, w in enumerate(weights):
        x = torch.gru_cell(x, state[layer], *w)  # [B, H]
        hidden.append(x)
    return x, torch.stack(hidden)  # [B, H], [layers, B, H]
