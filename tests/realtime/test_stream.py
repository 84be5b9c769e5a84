"""StreamingDecoder: chunk-by-chunk decoding equals POSSM's offline pass, with a constant state."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.models.registry import build_config, get_spec
from spikefm.realtime import StreamingDecoder
from spikefm.tokenize.base import collate

# Chunks of 1/16 s and queries at 64 Hz: every boundary and query time is exact in float32,
# so the offline batch (float32 timestamps) and the stream (float64 seconds) see equal times.
EXACT = {"chunk": 0.0625, "query_rate_hz": 64.0}


@pytest.fixture(scope="module")
def dataset():
    return generate(SyntheticConfig(n_sessions=2, units_per_session=(14, 18), n_trials=12, seed=5))


def build(dataset, **overrides):
    spec = get_spec("possm")
    config = build_config("possm", "tiny", **overrides)
    torch.manual_seed(0)
    return spec.model_cls(config, **spec.sizes_from_data(dataset.recordings, config)), spec.make_tokenizer(config)


def offline_and_streamed(model, tokenizer, recording, t0, drop=None):
    """Offline outputs on [t0, t0 + 1) and the same window streamed chunk by chunk (stream clock = t0 + ...)."""
    window = recording.window(t0, t0 + 1.0)
    tokens = tokenizer(window)
    batch = collate([tokens], pack=True)
    times = batch.timestamps.double().numpy()  # exactly the offline (float32) spike times
    units = tokens.unit_index
    if drop is not None:  # silence a span so some chunks are empty
        keep = (times < drop[0]) | (times >= drop[1])
        fields = ("values", "timestamps", "unit_index", "token_type", "mask")
        batch = collate([replace(tokens, **{name: getattr(tokens, name)[keep] for name in fields})], pack=True)
        times, units = times[keep], units[keep]
    model.eval()
    with torch.no_grad():
        offline = model(batch)["behavior"][0]  # [Q, D]
    decoder = StreamingDecoder(model, recording.unit_keys(), recording.session)
    streamed = decoder.run(times + t0, units, start=t0, n_chunks=int(round(1.0 / model.config.chunk)))
    return offline, streamed[: offline.shape[0]], decoder


@pytest.mark.parametrize("core", ["gru", "ssm", "transformer"])
def test_streaming_equals_offline_pass(dataset, core):
    model, tokenizer = build(dataset, core=core, rnn_layers=2, **EXACT)
    rec = dataset.recordings[1]
    offline, streamed, _ = offline_and_streamed(model, tokenizer, rec, 0.0)
    assert offline.shape == (64, 2)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)


def test_streaming_equals_offline_with_empty_chunks(dataset):
    model, tokenizer = build(dataset, **EXACT)
    offline, streamed, _ = offline_and_streamed(model, tokenizer, dataset.recordings[0], 0.0, drop=(0.25, 0.5))
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)


def test_streaming_matches_offline_at_the_published_50ms_chunks(dataset):
    # 50 ms / 100 Hz times are not exact in float32: agreement is to the timestamps' rounding.
    model, tokenizer = build(dataset)
    rec = dataset.recordings[1]
    offline, streamed, decoder = offline_and_streamed(model, tokenizer, rec, 0.0)
    assert streamed.shape == offline.shape == (100, 2)
    torch.testing.assert_close(streamed, offline, atol=5e-4, rtol=1e-3)
    np.testing.assert_allclose(decoder.last_query_times, 0.95 + np.arange(5) / 100)


def test_reset_restarts_the_stream_and_the_state_stays_constant(dataset):
    model, _ = build(dataset)
    rec = dataset.recordings[0]
    decoder = StreamingDecoder(model, rec.unit_keys(), rec.session)
    shapes = (decoder.state.core.shape, decoder.state.history.shape)

    def run(n_chunks):
        outputs = []
        for k in range(n_chunks):
            lo, hi = np.searchsorted(rec.spikes.times, [k * 0.05, (k + 1) * 0.05])
            outputs.append(decoder.step(rec.spikes.times[lo:hi], rec.spikes.units[lo:hi], (k + 1) * 0.05))
            assert (decoder.state.core.shape, decoder.state.history.shape) == shapes  # nothing grows
        return torch.stack(outputs)

    first = run(300)  # 15 s of stream
    assert torch.isfinite(first).all()
    decoder.reset()
    torch.testing.assert_close(run(3), first[:3])


def test_run_steps_consecutive_chunks_and_continues_the_stream(dataset):
    model, _ = build(dataset, **EXACT)
    rec = dataset.recordings[0]
    lo, hi = np.searchsorted(rec.spikes.times, [2.0, 3.0])
    times, units = rec.spikes.times[lo:hi], rec.spikes.units[lo:hi]
    whole = StreamingDecoder(model, rec.unit_keys(), rec.session).run(times, units, start=2.0, n_chunks=16)
    decoder, stepped = StreamingDecoder(model, rec.unit_keys(), rec.session), []
    for k in range(6):  # the first 6 chunks one by one, then run on from there
        inside = (times >= 2.0 + k / 16) & (times < 2.0 + (k + 1) / 16)
        stepped.append(decoder.step(times[inside], units[inside], 2.0 + (k + 1) / 16))
    half = times < 2.375
    rest = decoder.run(times[~half], units[~half], start=2.375, n_chunks=10)
    assert whole.shape == (16 * 4, 2)
    torch.testing.assert_close(torch.cat([*stepped, rest]), whole, atol=0, rtol=0)
    with pytest.raises(ValueError, match="must lie in"):
        decoder.run(times, units, start=3.0, n_chunks=2)  # spikes before the first chunk


def test_clear_errors(dataset):
    model, _ = build(dataset)
    rec = dataset.recordings[0]
    decoder = StreamingDecoder(model, rec.unit_keys(), rec.session)
    with pytest.raises(ValueError, match="out of order"):
        decoder.step([0.02, 0.01], [0, 1], 0.05)
    with pytest.raises(ValueError, match="outside the chunk"):
        decoder.step([0.01, 0.05], [0, 1], 0.05)  # 0.05 is the next chunk's
    with pytest.raises(ValueError, match="outside the chunk"):
        decoder.step([-0.001], [0], 0.05)
    with pytest.raises(ValueError, match="differ in length"):
        decoder.step([0.01], [0, 1], 0.05)
    with pytest.raises(ValueError, match="unit_keys"):
        decoder.step([0.01], [rec.n_units], 0.05)
    with pytest.raises(TypeError, match="integer"):
        decoder.step([0.01], [0.5], 0.05)
    decoder.step([0.01], [0], 0.05)
    with pytest.raises(ValueError, match="consecutive"):
        decoder.step([], [], 0.2)
    decoder.step([], [], 0.1)  # the failed steps left the stream where it was
    with pytest.raises(KeyError, match="not in the UnitEmbedding"):
        StreamingDecoder(model, ["nowhere/0"], rec.session)
    with pytest.raises(KeyError, match="not in the KeyedEmbedding"):
        StreamingDecoder(model, rec.unit_keys(), "nowhere")
    with pytest.raises(ValueError, match="query_offsets"):
        StreamingDecoder(model, rec.unit_keys(), rec.session, query_offsets=[0.05])
    with pytest.raises(TypeError, match="POSSM"):
        StreamingDecoder(torch.nn.Linear(2, 2), rec.unit_keys(), rec.session)
