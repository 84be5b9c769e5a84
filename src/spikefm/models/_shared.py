"""Parts the per-spike decoders (POYO, POYO+, POSSM, unified) and the behaviour decoders share.

Not a model: nothing here registers. Kept in one place so the models import it instead of
each other (POSSM used to import helpers from ``poyo.py`` and ``poyo_plus.py``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.tokenize.base import Batch

__all__ = [
    "EMBEDDING_INIT_STD",
    "RegisteredCalibration",
    "behavior_width",
    "spike_decoder_sizes",
    "unit_dropout_keep",
    "select_packed",
    "UnitRecalibration",
    "train_only",
]

EMBEDDING_INIT_STD = 0.02  # torch_brain POYO ``emb_init_scale``; the unit and session tables' KeyedEmbedding default


def behavior_width(recordings: Sequence[Recording], key: str, model: str) -> int:
    """The one width of behaviour ``key`` across ``recordings``; an error names the widths found.

    Args:
        recordings: the training recordings.
        key: behaviour series decoded (the config's ``behavior_key``).
        model: the model's name, for the message.
    """
    dims = {r.behavior[key].dim for r in recordings if key in r.behavior}
    if len(dims) != 1:
        raise ValueError(
            f"{model} decodes '{key}', which the recordings have with widths {sorted(dims)} "
            "(need exactly one width; set model.overrides.behavior_key)"
        )
    return dims.pop()


def spike_decoder_sizes(recordings: Sequence[Recording], config: Any) -> dict[str, Any]:
    """Sizes a per-spike decoder reads from the data: unit keys, sessions, behaviour width."""
    name = type(config).__name__.removesuffix("Config")
    keys = [k for r in recordings for k in r.unit_keys()]
    return {
        "unit_keys": keys,
        "sessions": [r.session for r in recordings],
        "behavior_dim": behavior_width(recordings, config.behavior_key, name),
    }


def unit_dropout_keep(batch: Batch, min_units: int) -> Tensor:
    """bool [*P]: tokens kept after hiding a random subset of each window's units.

    Per window of ``n > min_units`` units, ``n_keep ~ triangular(min_units, n, n)`` units are
    kept (torch_brain ``UnitDropout``); tokens without a unit stay. Every draw comes from torch's
    global generator, so ``torch.manual_seed`` alone fixes a training step (numpy's global
    generator, which it used before, is seeded by Lightning but not by the transfer protocol's
    training loop, so two processes trained the same model differently).
    """
    offsets = batch.unit_offsets.tolist()
    keep_unit = torch.ones(offsets[-1], dtype=torch.bool)
    for b in range(batch.batch_size):
        n = offsets[b + 1] - offsets[b]
        if n <= min_units:
            continue
        n_keep = _kept_count(n, min_units)
        keep_unit[torch.randperm(n)[n_keep:] + offsets[b]] = False
    keep_unit = keep_unit.to(batch.unit_index.device)
    return keep_unit[batch.unit_index.clamp(min=0)] | (batch.unit_index < 0)


def _kept_count(n: int, min_units: int) -> int:
    """``int(triangular(min_units, n, n))`` by the triangle's inverse CDF, from torch's global generator."""
    return int(min_units + (n - min_units) * math.sqrt(float(torch.rand(()))))


def select_packed(batch: Batch, keep: Tensor) -> Batch:
    """A packed batch with only the tokens where ``keep`` [N] is True (per-token fields and extents)."""
    sample = batch.sample_index[keep]
    lengths = torch.bincount(sample, minlength=batch.batch_size)
    cu = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)]).to(torch.int32)
    return replace(
        batch, timestamps=batch.timestamps[keep], unit_index=batch.unit_index[keep], token_type=batch.token_type[keep],
        mask=batch.mask[keep], values=batch.values[keep], sample_index=sample, cu_seqlens=cu, lengths=lengths,
        max_seqlen=int(lengths.max()), extras={k: v[keep] for k, v in batch.extras.items()},
    )  # fmt: skip


def train_only(model: nn.Module, modules: Sequence[nn.Module], rows: Sequence[tuple[Any, Sequence[str]]] = ()
               ) -> list[nn.Parameter]:
    """Freeze every parameter of ``model``, then let ``modules`` train and, of each (KeyedEmbedding, keys) in
    ``rows``, only those keys' rows; returns the parameters to optimise (a new session's stitchers and token)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    trainable = [parameter for module in modules for parameter in module.parameters()]
    for parameter in trainable:
        parameter.requires_grad_(True)
    for table, keys in rows:
        trainable += table.train_only(keys)
    return trainable


class UnitRecalibration:
    """POYO-style recalibration for a model with ``unit_embedding`` and ``session_embedding`` tables.

    A new session gets new unit and session rows (:meth:`add_session`); only those rows train
    (:meth:`freeze_for_recalibration`), as POYO recalibrates.
    """

    unit_embedding: Any
    session_embedding: Any

    def add_session(self, recording: Recording) -> list[str]:
        """Add rows for a new session's units and session token; returns the new unit keys."""
        keys = recording.unit_keys()
        self.unit_embedding.extend(keys)
        self.session_embedding.extend([recording.session])
        return keys

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only ``recording``'s unit rows and session row; returns the parameters to optimise."""
        rows = [(self.unit_embedding, recording.unit_keys()), (self.session_embedding, [recording.session])]
        return train_only(self, [], rows)  # type: ignore[arg-type]


class RegisteredCalibration:
    """Mixin for models that keep registered calibration counts per session (SPINT, unified).

    ``self._calibration`` maps a session to (unit keys, counts tensor). Feature tables named in ``FEATURE_TABLES``
    (optional) map a session to per-unit features [U, F] computed from its calibration windows when they were
    registered (the unified model's triggered states: ``features`` for its count readout, ``input_features`` for
    its input identities). All of them travel in the module's extra state, so a saved model (state dict,
    safetensors) keeps its calibration, and they follow the model across devices.
    """

    _calibration: dict[str, tuple[tuple[str, ...], Tensor]]
    FEATURE_TABLES: tuple[str, ...] = ("features",)

    def _feature_table(self, name: str) -> dict[str, Tensor]:
        """Session -> per-unit features [U, F] of the feature table ``name``."""
        return self.__dict__.setdefault(f"_calibration_{name}", {})

    @property
    def _features(self) -> dict[str, Tensor]:
        return self._feature_table("features")

    def _registered_features(self, name: str, session: str) -> dict[str, Tensor]:
        """Unit key -> its row [F] of the feature table ``name`` registered for ``session``."""
        return dict(zip(self._calibration[session][0], self._feature_table(name)[session]))

    def get_extra_state(self) -> dict[str, Any]:
        tables = {name: self._feature_table(name) for name in self.FEATURE_TABLES}
        return {s: {"keys": list(k), "counts": c.cpu(),
                    **{name: table[s].cpu() for name, table in tables.items() if s in table}}
                for s, (k, c) in self._calibration.items()}  # fmt: skip

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self._calibration = {s: (tuple(v["keys"]), v["counts"]) for s, v in (state or {}).items()}
        for name in self.FEATURE_TABLES:
            table = self._feature_table(name)
            table.clear()
            table.update({s: v[name] for s, v in (state or {}).items() if name in v})

    def forget(self, session: str | None = None) -> None:
        """Drop the registered calibration of ``session`` (or of every session)."""
        tables = [self._feature_table(name) for name in self.FEATURE_TABLES]
        if session is None:
            self._calibration.clear()
            for table in tables:
                table.clear()
        else:
            self._calibration.pop(session, None)
            for table in tables:
                table.pop(session, None)

    @property
    def calibrated_sessions(self) -> list[str]:
        """Sessions with registered calibration, sorted."""
        return sorted(self._calibration)

    def _apply(self, fn, recurse: bool = True):  # keep registered counts on the model's device
        out = super()._apply(fn, recurse)
        device = next(self.parameters()).device
        self._calibration = {s: (k, c.to(device)) for s, (k, c) in self._calibration.items()}
        for name in self.FEATURE_TABLES:
            table = self._feature_table(name)
            table.update({s: f.to(device) for s, f in table.items()})
        return out
