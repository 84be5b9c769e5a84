"""The unified model's calibration (SPINT's label-free identity) and its second mode (POYO's gradient recalibration).

A mixin of :class:`~spikefm.models.unified.Unified`: :meth:`~UnifiedCalibration.calibrate` registers a session's
unlabeled calibration windows, from which every unit's identity, population frame and spike-triggered core states
are computed once; :meth:`~UnifiedCalibration.add_session` and :meth:`~UnifiedCalibration.freeze_for_recalibration`
learn one identity offset per unit by gradient, every shared weight frozen.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models._shared import RegisteredCalibration, train_only
from spikefm.models.unified_config import unified_tokenizer
from spikefm.nn import KeyedEmbedding
from spikefm.nn.calibration import calibration_starts, calibration_window_counts, registered_triggered_states
from spikefm.nn.population import recording_frame
from spikefm.objectives.unit_masking import UnitMasks
from spikefm.tokenize.base import collate

__all__ = ["UnifiedCalibration"]


class UnifiedCalibration(RegisteredCalibration):
    """Registered calibration and gradient recalibration of :class:`~spikefm.models.unified.Unified`."""

    FEATURE_TABLES = ("features", "input_features")  # registered triggered states: count readout, input identity

    def _registered(self, session: str) -> dict[str, Tensor]:
        """Unit key -> identity [D] from the session's registered calibration windows."""
        keys, counts = self._calibration[session]
        return dict(zip(keys, self.id_encoder(counts.to(self.latent_embedding.weight.device)[None])[0]))

    def calibrate(
        self, recording: Recording, trials: Sequence[int] | None = None, *, starts: Sequence[float] | None = None
    ) -> None:
        """Register unlabeled calibration windows ``[t, t + id_window)`` of ``recording`` (spikes only).

        Args:
            trials: trial indices whose starts begin the windows (SPINT's convention, as
                :mod:`spikefm.eval.transfer` calls it); default the first ``calibration_windows``
                trials of the train split.
            starts: window starts in seconds instead (e.g. for a recording without trials, where
                the default is back-to-back windows from its start).
        """
        c = self.config
        if self.id_encoder is None:
            raise ValueError("a unified model with identity: table has no calibration; add_session(recording) "
                             "and recalibrate its rows by gradient (freeze_for_recalibration)")
        starts = calibration_starts(recording, trials=trials, starts=starts, n_windows=c.calibration_windows,
                                    window=c.id_window)  # fmt: skip
        counts = calibration_window_counts(recording, trials=None, starts=starts, n_windows=len(starts),
                                           bin_size=c.id_bin, window=c.id_window)  # fmt: skip
        self.forget(recording.session)
        self._calibration[recording.session] = (tuple(recording.unit_keys()), counts)
        if self.population is not None and recording.session not in self.population:  # a new session's frame
            frame = recording_frame(recording, c.population_pcs, c.population_bin, starts=starts, window=c.id_window)
            self.population.register(recording.session, recording.unit_keys(), frame)
        if c.triggered_input:  # first: each unit's triggered state of the first pass, for its input identity
            self._input_features[recording.session] = self._registered_triggered(recording, starts, first_pass=True)
        if c.triggered_identity:  # + each unit's triggered state over the same windows, with these weights
            self._features[recording.session] = self._registered_triggered(recording, starts)

    @property
    def _input_features(self) -> dict[str, Tensor]:
        """Session -> [U, H + 1] its units' triggered states of the first pass over its calibration windows."""
        return self._feature_table("input_features")

    @torch.no_grad()
    def _registered_triggered(self, recording: Recording, starts: np.ndarray, first_pass: bool = False) -> Tensor:
        """[U, H + 1] the recording's units' triggered states over the calibration windows (eval mode), of the
        final core state or (``first_pass``) of the first pass's."""
        # spikes only: calibration data is unlabeled
        was_training, tokenizer = self.training, unified_tokenizer(self.config, query="none", behavior_keys=())
        dev = self.latent_embedding.weight.device
        self.eval()
        batch = collate([tokenizer(recording.window(float(t), float(t) + self.config.id_window)) for t in starts],
                        pack=True).to(dev)  # fmt: skip
        none = torch.zeros(batch.batch_size, int(batch.unit_offsets.diff().max()), dtype=torch.bool, device=dev)
        everything = batch.mask.new_ones(len(starts))  # every window is calibration
        _, _, counts, core_out = self._encode(batch, UnitMasks("neuron", none, none, 0), everything, first_pass)
        ridge = self.config.input_ridge if first_pass else None
        table = registered_triggered_states(counts, core_out, batch.unit_keys, self._unit_windows(batch), ridge)
        self.train(was_training)
        return torch.stack([table[k] for k in recording.unit_keys()])

    def forget(self, session: str | None = None) -> None:
        """Drop the registered calibration of ``session`` (or of every session) and the population frames that
        calibration made; a training recording's frame stays."""
        super().forget(session)
        if self.population is not None:
            self.population.forget(session)

    @property
    def calibrates(self) -> bool:
        """Whether identities come from calibration data (False for the ``identity: table`` ablation)."""
        return self.id_encoder is not None

    def add_session(self, recording: Recording) -> list[str]:
        """Recalibration mode: add a zero identity offset per unit of ``recording`` (with ``identity:
        table``, a new learned row per unit, as POYO)."""
        self._recalibrated.extend(recording.unit_keys())
        return recording.unit_keys()

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only ``recording``'s identity offsets (its IDEncoder identities stay the starting point)
        or, with ``identity: table``, its rows."""
        return train_only(self, [], [(self._recalibrated, recording.unit_keys())])

    @property
    def _recalibrated(self) -> KeyedEmbedding:
        """The table gradient recalibration grows and trains: identity offsets, or the lookup table."""
        return self.identity_offset if self.unit_table is None else self.unit_table
