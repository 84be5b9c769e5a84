"""Learned per-unit offsets on top of inferred identities: POYO-style gradient recalibration as an
optional second mode of a model whose identities come from an IDEncoder (unified).

The table starts empty, so a model in zero-shot mode has no per-unit or per-session parameter;
:meth:`IdentityOffsets.extend` adds zero rows for a new session's units and
:meth:`IdentityOffsets.train_only` makes only those rows trainable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from spikefm.nn.identity import UnitEmbedding

__all__ = ["IdentityOffsets"]


class IdentityOffsets(UnitEmbedding):
    """A :class:`UnitEmbedding` of offsets, empty and zero-initialised; units without a row get zero.

    Shapes:
        offsets(keys) -> [len(keys), D].
    """

    def __init__(self, *, dim: int) -> None:
        super().__init__(dim=dim, keys=[], init_std=0.0)

    def offsets(self, keys: Sequence[str], like: Tensor) -> Tensor:
        """Offsets [len(keys), D] (zeros for keys without a row), on ``like``'s device and dtype."""
        if not len(self):
            return like.new_zeros(len(keys), self.dim)
        vocab = {k: i for i, k in enumerate(self.keys)}
        rows = torch.tensor([vocab.get(k, -1) for k in keys], dtype=torch.long, device=like.device)
        return self(rows.clamp(min=0)) * (rows >= 0)[:, None]
