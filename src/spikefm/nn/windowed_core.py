"""A windowed causal transformer in the recurrent-core protocol (the unified model's core ablation).

:class:`WindowedTransformer` reads, at each step, its last ``window`` inputs (the step's own
included) through a causal pre-norm transformer with rotary positions over step indices, and
outputs the last position. Its streaming state is those inputs, so it has the protocol of
:mod:`spikefm.nn.recurrent` (``forward`` / ``step`` / ``initial_state``) and ``step`` run over a
sequence equals ``forward`` on it: a drop-in replacement for the GRU / SSM core, trading a
fixed-size recurrent state for attention over a fixed-length history.

Shape legend: B batch, T steps, D input width, Do output width, W window (steps).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from spikefm.nn.attention import causal_mask
from spikefm.nn.position import RotaryTimeEmbedding
from spikefm.nn.transformer import TransformerEncoder

__all__ = ["WindowedTransformer"]


class WindowedTransformer(nn.Module):
    """Causal transformer over the last ``window`` steps.

    Args:
        input_dim: D. hidden_dim: Do, the transformer width and output width.
        layers: transformer blocks. heads: attention heads (must divide ``hidden_dim``).
        window: W, steps each output reads (its own and the ``W - 1`` before it).
        dropout: residual-branch dropout (training only).

    Shapes:
        forward(x [B, T, D], state [B, W, D + 1] | None) -> (y [B, T, Do], state [B, W, D + 1])
        step(x_t [B, D], state [B, W, D + 1]) -> (y_t [B, Do], state)

    The state holds the last ``W`` inputs, oldest first, each with a last column of 1 where a
    step has been seen (0 before a stream has ``W`` steps).
    """

    def __init__(
        self, *, input_dim: int, hidden_dim: int, layers: int = 1, heads: int = 2, window: int = 20, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if window < 1 or hidden_dim % heads:
            raise ValueError(f"WindowedTransformer needs window >= 1 and heads dividing hidden_dim "
                             f"(got window {window}, hidden_dim {hidden_dim}, heads {heads})")  # fmt: skip
        self.input_dim, self.hidden_dim, self.window = input_dim, hidden_dim, window
        self.project = nn.Linear(input_dim, hidden_dim)
        rotary = RotaryTimeEmbedding(head_dim=hidden_dim // heads, t_min=2.0, t_max=8.0 * window)  # periods in steps
        self.encoder = TransformerEncoder(dim=hidden_dim, depth=layers, heads=heads, ffn="gelu", dropout=dropout,
                                          rotary=rotary)  # fmt: skip

    def initial_state(self, batch: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        return torch.zeros(batch, self.window, self.input_dim + 1, device=device, dtype=dtype)

    def forward(self, x: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        state = self.initial_state(x.shape[0], x.device, x.dtype) if state is None else state
        seen = int(state[0, :, -1].sum())  # the same for every row of a batch
        sequence = torch.cat([state[:, state.shape[1] - seen :, :-1], x], dim=1)  # [B, S, D], S = seen + T
        steps = sequence.shape[1]
        if steps <= self.window:  # every output reads the whole causal past: one pass
            y = self._causal(sequence)[:, seen:]  # [B, T, Do]
        else:  # each output reads its own last-W inputs, left-aligned (causal: padding after them is unread)
            ends = torch.arange(seen, steps, device=x.device)  # [T] each output's position
            starts = (ends - self.window + 1).clamp(min=0)
            index = (starts[:, None] + torch.arange(self.window, device=x.device)).clamp(max=steps - 1)  # [T, W]
            windows = sequence[:, index.flatten()].unflatten(1, index.shape).flatten(0, 1)  # [B * T, W, D]
            out = self._causal(windows)  # [B * T, W, Do]
            last = (ends - starts).repeat(x.shape[0])  # [B * T] the output's slot in its window
            y = out[torch.arange(out.shape[0], device=x.device), last].unflatten(0, (x.shape[0], -1))
        return y, self._state_after(sequence)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        y, state = self.forward(x_t[:, None], state)
        return y[:, 0], state

    def _causal(self, sequence: Tensor) -> Tensor:
        """[N, L, D] -> [N, L, Do]: the causal stack with positions 0..L-1 (only differences matter)."""
        length = sequence.shape[1]
        times = torch.arange(length, device=sequence.device, dtype=torch.float32).expand(sequence.shape[0], -1)
        mask = causal_mask(length, device=sequence.device)
        return self.encoder(self.project(sequence), attn_mask=mask, times=times)

    def _state_after(self, sequence: Tensor) -> Tensor:
        """The last ``W`` rows of ``sequence`` [B, S, D] with their seen flags, right-aligned."""
        kept = sequence[:, -self.window :]
        state = self.initial_state(sequence.shape[0], sequence.device, sequence.dtype)
        state[:, self.window - kept.shape[1] :, :-1] = kept
        state[:, self.window - kept.shape[1] :, -1] = 1.0
        return state
