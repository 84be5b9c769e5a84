"""Neuroformer generation: sampled trains are well formed, expected counts are right, scores run."""

import math

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.generation import decode_behavior, generate_spikes, generation_scores, split_trials
from spikefm.models.registry import build_config, get_spec


@pytest.fixture(scope="module")
def setup():
    data = generate(SyntheticConfig(n_sessions=1, units_per_session=(10, 12), n_trials=12, seed=5))
    spec = get_spec("neuroformer")
    config = build_config("neuroformer", "tiny", block_size=16)
    rec = data.recordings[0]
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data([rec], config)).eval()
    return data, rec, model, spec.make_tokenizer(config)


def test_sampled_trains_are_well_formed_and_seeded(setup):
    _, rec, model, _ = setup
    out = generate_spikes(model, rec, [0, 1], duration=0.2, n_samples=2, seed=3)
    again = generate_spikes(model, rec, [0, 1], duration=0.2, n_samples=2, seed=3)
    assert len(out.times) == 2 and len(out.times[0]) == 2
    for times, units, times2 in zip(out.times, out.units, again.times):
        for t, u, t2 in zip(times, units, times2):
            assert t.shape == u.shape and np.array_equal(t, t2)
            assert np.all((t >= 0) & (t < 0.2 + 1e-9)) and np.all((u >= 0) & (u < rec.n_units))
    counts = out.counts(0.02)  # [K, S, T, N]
    assert counts.shape == (2, 2, 10, rec.n_units)
    assert counts.sum() == sum(t.size for times in out.times for t in times)
    # a chunk holds at most block_size - 2 spikes (SOS and EOS take two places)
    per_chunk = out.counts(model.config.current_window).max()
    assert per_chunk <= model.config.block_size - 2


def test_expected_counts_match_the_sampling_process(setup, monkeypatch):
    """Fixed logits: each step emits EOS with prob e, else unit u with prob p_u and dt d with prob q_d.
    Along one trajectory every step taken adds p_u q_d to (u, d): exactly (spikes + EOS step) x p_u q_d;
    over trajectories that averages to p_u q_d x the expected number of steps."""
    _, rec, model, _ = setup
    n, n_off = model.n_units, model.events.n_offsets
    id_logits = torch.full((n + 3,), -1e9)
    id_logits[:n] = torch.linspace(0.0, 1.0, n)
    id_logits[model.specials["eos"]] = 1.5
    dt_logits = torch.full((model.events.dt_vocab_size,), -1e9)
    dt_logits[:n_off] = torch.linspace(1.0, 0.0, n_off)

    def fixed(inputs):
        g = inputs.cur_ids.shape[0]
        return id_logits.expand(g, -1).clone(), dt_logits.expand(g, -1).clone()

    monkeypatch.setattr(model, "next_token_logits", fixed)
    out = generate_spikes(model, rec, [0], duration=0.1, n_samples=400, seed=1)
    p = torch.softmax(id_logits, 0).numpy()
    q = torch.softmax(dt_logits, 0).numpy()[:n_off]
    e, steps = p[model.specials["eos"]], model.config.block_size - 2
    expected_steps = sum((1 - e) ** i for i in range(steps))  # steps that can emit a spike
    analytic = expected_steps * q[:, None] * p[None, :n]  # [O, N]
    spikes = out.counts(model.config.current_window)[0, :, 0].sum(-1)  # [S] spikes in the first chunk
    taken = spikes + (spikes < steps)  # sampling steps while active (EOS ends one, the block another)
    per_step = q[:, None] * p[None, :n]
    np.testing.assert_allclose(out.expected[0, :, 0], taken[:, None, None] * per_step, rtol=1e-5)
    np.testing.assert_allclose(out.expected[0, :, 0].mean(0), analytic, rtol=0.1)
    rates = out.expected_rates(0.01)  # mass is spread, not lost
    np.testing.assert_allclose(rates.sum(axis=(2, 3)), out.expected.sum(axis=(2, 3, 4)), rtol=1e-6)


def test_true_past_and_behavior_decoding(setup):
    _, rec, model, tokenizer = setup
    out = generate_spikes(model, rec, [2], duration=0.1, true_past=True)
    assert out.expected.shape == (1, 1, 2, model.events.n_offsets, rec.n_units)
    decoded, true = decode_behavior(model, tokenizer, rec, [0, 1], duration=0.2)
    assert decoded.shape == true.shape and decoded.shape[0] == 2 * 20  # 10 ms behaviour samples
    assert np.isfinite(decoded).all()


def test_generation_scores_report_rates_bits_and_decoding(setup):
    data, rec, model, tokenizer = setup
    scores = generation_scores(model, tokenizer, rec, split="test", n_samples=1, dataset=data, duration=0.2)
    for key in ("rate MAE (Hz)", "rate corr", "bits/spike", "bits/spike sampled", "bits/spike oracle",
                "bits/spike condition PSTH", "bits/spike history GLM", "decode R2", "ridge decode R2"):
        assert key in scores and (math.isfinite(scores[key]) or key == "rate corr")
    assert scores["trials"] == len(split_trials(rec, "test"))
    assert scores["bits/spike oracle"] > scores["bits/spike"]  # an untrained model is far from the truth
    assert scores["bits/spike history GLM"] > scores["bits/spike"]  # so is it from the equal-information GLM
