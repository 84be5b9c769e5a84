"""POSSM computes what it computed before its chunked pipeline moved into ``nn/chunked`` (issue 16).

``data/possm_reference.pt`` holds the outputs of POSSM as it was at commit 5a59940 (its own copies of
the chunk encoder, read-out window and streaming step), on fixed seeds: evaluation (GRU and SSM
cores), a training pass (unit dropout, dropout) and a streamed decode, plus the state dict's
parameter names and shapes (saved checkpoints must keep loading). The refactored model must
reproduce them to 1e-6. As in ``test_unified_reference.py``, torch's dropout kernel stands in for
``FastDropout`` so the reference does not depend on how that draws its masks.

Regenerate only when the model's behaviour is meant to change:

    PYTHONPATH=src python tests/models/test_possm_reference.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.models.registry import build_config, get_spec
from spikefm.realtime import StreamingDecoder
from spikefm.tokenize.base import collate

REFERENCE = Path(__file__).parent / "data" / "possm_reference.pt"
# More units than min_units (unit dropout acts); 1/16 s chunks and 64 Hz queries keep boundary
# times exact in float32 for the streamed pass.
OVERRIDES = {"chunk": 0.0625, "query_rate_hz": 64.0}


def _build(recordings, **overrides):
    spec = get_spec("possm")
    config = build_config("possm", "tiny", **{**OVERRIDES, **overrides})
    torch.manual_seed(0)
    return spec.model_cls(config, **spec.sizes_from_data(recordings, config)), spec.make_tokenizer(config)


def reference_outputs() -> dict[str, object]:
    """Every output the reference records, computed by the current code."""
    data = generate(SyntheticConfig(n_sessions=2, units_per_session=(26, 32), n_trials=8, seed=5))
    out: dict[str, object] = {}
    for core in ("gru", "ssm"):
        model, tokenizer = _build(data.recordings, core=core, latents_per_chunk=2)
        starts = [(r, float(t0)) for r in data.recordings for t0 in r.trials.start[:2]]
        batch = collate([tokenizer(r.window(t0, t0 + 1.0)) for r, t0 in starts], pack=True)
        with torch.no_grad():
            out[f"{core}/eval"] = model.eval()(batch)["behavior"]
        model.train()
        torch.manual_seed(1)
        np.random.seed(1)
        train = model(batch)["behavior"]
        out[f"{core}/train"] = train.detach()
        out[f"{core}/loss"] = get_spec("possm").objective({"behavior": train}, batch)[0].detach()
        out[f"{core}/stream"] = _streamed(model.eval(), data.recordings[1])
        out[f"{core}/state_dict"] = [(k, tuple(v.shape)) for k, v in model.state_dict().items() if torch.is_tensor(v)]
    return out


def _streamed(model, recording) -> torch.Tensor:
    tokens = get_spec("possm").make_tokenizer(model.config)(recording.window(0.0, 1.0))  # spike tokens only
    times = tokens.timestamps.astype(np.float32).astype(np.float64)
    decoder = StreamingDecoder(model, recording.unit_keys(), recording.session)
    return decoder.run(times, tokens.unit_index, start=0.0, n_chunks=16)


def test_refactored_possm_reproduces_the_reference_outputs(assert_matches_reference):
    assert_matches_reference(REFERENCE, reference_outputs)


if __name__ == "__main__":
    from conftest import regenerate  # this folder's conftest (the script's own folder is on sys.path)

    regenerate(REFERENCE, reference_outputs)
