"""Files in the Neural Latents Benchmark layout, so any external scorer can check our numbers.

Submission (``spikefm eval --out``): one HDF5 group per session holding expected counts per bin,
``[trials, bins, units]``: ``train_rates_heldin``, ``train_rates_heldout``, ``eval_rates_heldin``,
``eval_rates_heldout`` (the keys ``nlb_tools.evaluation.evaluate`` reads); decoders add
``eval_behavior_pred`` [trials, queries, dims]. Targets (``spikefm synth --nlb-targets``): one
group per session with ``eval_spikes_heldout``, ``train_behavior``, ``eval_behavior``,
``eval_cond_idx`` and, as the ground truth NLB lacks, ``eval_true_rates_heldout``.
Train trials are the ``train`` split; eval trials the ``test`` split; 20 ms bins from trial start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import h5py
import numpy as np

from spikefm.data.recording import Recording
from spikefm.eval.evaluate import predict
from spikefm.eval.trials import trial_arrays

__all__ = ["write_submission", "write_synthetic_targets", "NLB_BIN_SIZE", "NLB_WINDOW"]

NLB_BIN_SIZE = 0.02
NLB_WINDOW = 1.0


def write_submission(module: Any, config: Any, recordings: Sequence[Recording], out: str | Path) -> Path:
    """Predictions of a trained model for every recording's train and test trials."""
    from spikefm.models.registry import build_config, get_spec

    spec = get_spec(config.model.name)
    model_config = build_config(config.model.name, config.model.preset, **config.model.overrides)
    tokenizer = spec.make_tokenizer(model_config, **config.tokenizer)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(out, "w") as handle:
        for rec in recordings:
            group = handle.create_group(rec.session)
            for split, prefix in (("train", "train"), ("test", "eval")):
                predictions = predict(module.model, tokenizer, rec, split=split, window=config.data.window,
                                      pack=spec.pack)
                if predictions.rates is not None:
                    held = predictions.heldout
                    group[f"{prefix}_rates_heldin"] = predictions.rates[..., ~held].astype(np.float32)
                    group[f"{prefix}_rates_heldout"] = predictions.rates[..., held].astype(np.float32)
                if predictions.behavior is not None:
                    group[f"{prefix}_behavior_pred"] = predictions.behavior.astype(np.float32)
    return out


def write_synthetic_targets(dataset: Any, out_dir: str | Path) -> list[Path]:
    """NLB evaluation targets for each synthetic session, ``<session>_nlb_targets.h5``."""
    out_dir = Path(out_dir)
    paths = []
    for index, rec in enumerate(dataset.recordings):
        path = out_dir / f"{rec.session}_nlb_targets.h5"
        train = trial_arrays(rec, split="train", bin_size=NLB_BIN_SIZE, window=NLB_WINDOW)
        test = trial_arrays(rec, split="test", bin_size=NLB_BIN_SIZE, window=NLB_WINDOW)
        true = np.stack([dataset.true_rate_counts(index, NLB_BIN_SIZE, t0, t0 + NLB_WINDOW) for t0 in test.starts])
        with h5py.File(path, "w") as handle:
            group = handle.create_group(rec.session)
            group["eval_spikes_heldout"] = test.heldout_counts.astype(np.float32)
            group["eval_true_rates_heldout"] = true[..., test.heldout].astype(np.float32)
            if train.behavior is not None:
                group["train_behavior"] = train.behavior
                group["eval_behavior"] = test.behavior
            if test.conditions is not None:
                group["eval_cond_idx"] = test.conditions
            group.attrs["bin_size"] = NLB_BIN_SIZE
        paths.append(path)
    return paths
