"""The unified model: unit-permutation invariance, no per-session parameters, streaming equals the
offline pass, every masking scheme hides what it claims, identity recalibration trains offsets only."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.models.registry import build_config, get_spec
from spikefm.objectives.unit_masking import UnitMasks, eligible_schemes, unit_masks
from spikefm.realtime import StreamingDecoder
from spikefm.tokenize.base import TokenType, collate

# 1/16 s chunks, 64 Hz queries: boundary and query times are exact in float32 (see tests/realtime).
EXACT = {"chunk": 0.0625, "query_rate_hz": 64.0}


@pytest.fixture(scope="module")
def dataset():
    return generate(SyntheticConfig(n_sessions=2, units_per_session=(14, 18), n_trials=12, seed=5))


def build(recordings, **overrides):
    spec = get_spec("unified")
    config = build_config("unified", "tiny", **overrides)
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data(recordings, config))
    return model.eval(), spec.make_tokenizer(config)


def tokens_of(tokenizer, recording, starts):
    return [tokenizer(recording.window(float(t0), float(t0) + 1.0)) for t0 in starts]


def permuted(tokens, rng):
    """The same window with its units listed in another order and its tokens shuffled."""
    perm = rng.permutation(tokens.n_units)  # new unit i is old unit perm[i]
    inverse = np.argsort(perm)
    order = rng.permutation(len(tokens))
    return replace(
        tokens, unit_keys=tuple(np.asarray(tokens.unit_keys)[perm]), unit_index=inverse[tokens.unit_index][order],
        timestamps=tokens.timestamps[order], token_type=tokens.token_type[order], mask=tokens.mask[order],
        values=tokens.values[order], unit_extras={k: v[perm] for k, v in tokens.unit_extras.items()},
    )  # fmt: skip


@pytest.mark.parametrize("token_counts", [False, True])
def test_permuting_units_changes_nothing(dataset, token_counts):
    model, tokenizer = build(dataset.recordings, token_counts=token_counts)
    rec = dataset.recordings[0]
    samples = tokens_of(tokenizer, rec, rec.trials.start[:4])  # in-batch calibration across the 4 windows
    rng = np.random.default_rng(0)
    with torch.no_grad():
        base = model(collate(samples, pack=True))
        shuffled_samples = [permuted(t, rng) for t in samples]
        shuffled = model(collate(shuffled_samples, pack=True))
    torch.testing.assert_close(shuffled["behavior"], base["behavior"], atol=1e-5, rtol=1e-5)
    # Count predictions are per unit: match rows by unit key.
    offsets = np.cumsum([0] + [t.n_units for t in samples])
    index = [offsets[b] + list(shuffled_samples[b].unit_keys).index(k)
             for b, t in enumerate(samples) for k in t.unit_keys]  # fmt: skip
    torch.testing.assert_close(shuffled["unit_log_rates"][index], base["unit_log_rates"], atol=1e-5, rtol=1e-5)


def test_no_parameter_depends_on_sessions_or_units(dataset):
    other = generate(SyntheticConfig(n_sessions=3, units_per_session=(9, 25), n_trials=4, seed=11))
    a, _ = build(dataset.recordings)
    b, tokenizer = build(other.recordings)
    shapes = {k: tuple(v.shape) for k, v in a.state_dict().items() if isinstance(v, torch.Tensor)}
    assert shapes == {k: tuple(v.shape) for k, v in b.state_dict().items() if isinstance(v, torch.Tensor)}
    assert len(a.identity_offset) == 0 and a.identity_offset.weight.numel() == 0
    # A session never seen: calibrate (unlabeled, forward pass only) and decode; no parameter is added.
    n_params = sum(p.numel() for p in a.parameters())
    new = other.recordings[2]
    a.calibrate(new)
    with torch.no_grad():
        out = a(collate(tokens_of(tokenizer, new, new.trials.start[:2]), pack=True))
    assert torch.isfinite(out["behavior"]).all()
    assert sum(p.numel() for p in a.parameters()) == n_params


@pytest.mark.parametrize(
    ("core", "token_counts", "ablation"),
    [("gru", False, {}), ("ssm", False, {}), ("gru", True, {}),
     ("transformer", False, {"core_window": 5}),  # 16 chunks: outputs read their own 5-chunk windows
     ("gru", False, {"input_bin": 0.015625})],  # binned input: times at 1/64 s bin centres
)  # fmt: skip
def test_streaming_equals_offline_pass(dataset, core, token_counts, ablation):
    model, tokenizer = build(dataset.recordings, core=core, rnn_layers=2, token_counts=token_counts, **EXACT,
                             **ablation)  # fmt: skip
    rec = dataset.recordings[1]
    model.calibrate(rec)
    tokens = tokenizer(rec.window(0.0, 1.0))
    batch = collate([tokens], pack=True)
    with torch.no_grad():
        offline = model(batch)["behavior"][0]  # [Q, D]
    # Held-out units (NLB) are targets only: the stream is given the other units.
    inputs = np.flatnonzero(~rec.units.heldout)
    spikes = (tokens.token_type == TokenType.SPIKE) & np.isin(tokens.unit_index, inputs)
    times, units = batch.timestamps.double().numpy()[spikes], np.searchsorted(inputs, tokens.unit_index[spikes])
    decoder = StreamingDecoder(model, [rec.unit_keys()[i] for i in inputs], rec.session)
    streamed = decoder.run(times, units, start=0.0, n_chunks=16)
    assert offline.shape == (64, 2)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)


def test_streaming_needs_a_calibrated_session(dataset):
    model, _ = build(dataset.recordings)
    with pytest.raises(KeyError, match="calibrate"):
        StreamingDecoder(model, dataset.recordings[0].unit_keys(), dataset.recordings[0].session)


def _shift_spikes(tokens, units, delta):
    """``tokens`` with every spike of ``units`` moved by ``delta`` s (kept inside the window)."""
    hit = np.isin(tokens.unit_index, units) & (tokens.token_type == TokenType.SPIKE)
    times = tokens.timestamps.copy()
    times[hit] = np.clip(times[hit] + delta, 0.0, tokens.duration - 1e-3)
    return replace(tokens, timestamps=times)


@pytest.mark.parametrize("scheme", ["neuron", "intra_region", "inter_region"])
def test_hidden_units_never_reach_the_encoder(dataset, scheme):
    model, tokenizer = build(dataset.recordings)
    rec = dataset.recordings[1]
    samples = tokens_of(tokenizer, rec, rec.trials.start[:4])
    batch = collate(samples, pack=True)
    regions = np.unique(np.asarray(batch.unit_extras["region"]), return_inverse=True)[1].reshape(4, -1)
    valid = torch.ones(4, rec.n_units, dtype=torch.bool)
    masks = unit_masks(scheme, valid, torch.as_tensor(regions), generator=torch.Generator().manual_seed(1))
    hidden, scored = masks.hidden[0].numpy(), masks.scored[0].numpy()
    assert scored.any() and not (scored & ~hidden).any()  # every scored unit is hidden
    if scheme == "neuron":
        assert hidden.sum() == round(0.3 * rec.n_units) or hidden.sum() == int(np.ceil(0.3 * rec.n_units))
    if scheme == "inter_region":  # exactly one whole region
        assert np.unique(regions[0][hidden]).size == 1 and hidden.sum() == (regions[0] == regions[0][hidden][0]).sum()
    if scheme == "intra_region":  # scored within one region, every other region hidden
        region = regions[0][scored][0]
        assert (regions[0][scored] == region).all() and hidden[regions[0] != region].all()
    with torch.no_grad():
        base = model(batch, masks)
        # window 0's hidden units move; the other windows may pool that activity (calibration), window 0 may not
        moved = [_shift_spikes(t, np.flatnonzero(masks.hidden[0].numpy()), 0.37) if b == 0 else t
                 for b, t in enumerate(samples)]
        out = model(collate(moved, pack=True), masks)
    own = int(masks.scored[0].sum())  # window 0's scored rows come first
    assert not torch.equal(out["unit_counts"][:own], base["unit_counts"][:own])  # their activity did change ...
    # ... and nothing saw it (to float rounding: the chunk grid's padded width may differ)
    torch.testing.assert_close(out["behavior"], base["behavior"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(out["unit_log_rates"][:own], base["unit_log_rates"][:own], atol=1e-6, rtol=1e-6)


def test_forward_prediction_sees_only_earlier_chunks(dataset):
    model, tokenizer = build(dataset.recordings)
    rec = dataset.recordings[0]
    samples = tokens_of(tokenizer, rec, rec.trials.start[:3])
    model.calibrate(rec)  # identities fixed, so only the encoder path is tested
    pools = torch.tensor([True, False, False])  # window 0 calibrates the readouts, windows 1-2 are scored
    valid = torch.ones(3, rec.n_units, dtype=torch.bool)
    masks = unit_masks("causal", valid)
    assert masks.shift == 1 and not masks.hidden.any() and masks.scored.all()
    later = [t if b == 0 else replace(t, timestamps=np.where(t.timestamps >= 0.5, np.minimum(t.timestamps + 0.2, 0.999),
                                                             t.timestamps)) for b, t in enumerate(samples)]  # fmt: skip
    with torch.no_grad():
        base = model(collate(samples, pack=True), masks, calibration=pools)
        out = model(collate(later, pack=True), masks, calibration=pools)
    scored = slice(rec.n_units, None)  # the rows of windows 1-2
    chunk = int(round(0.5 / model.config.chunk))  # chunks 0..9 end by 0.5 s; count query c sees chunks < c
    early = slice(0, chunk + 1)  # to float rounding: the chunk grid's padded width may differ
    torch.testing.assert_close(out["unit_log_rates"][scored, early], base["unit_log_rates"][scored, early],
                               atol=1e-6, rtol=1e-6)
    assert not torch.equal(out["unit_log_rates"][scored, chunk + 2 :], base["unit_log_rates"][scored, chunk + 2 :])


@pytest.mark.parametrize("forward_chunks, horizons", [(1, {1}), (4, {1, 2, 3, 4})])
def test_training_predicts_1_to_forward_chunks_ahead(dataset, forward_chunks, horizons):
    """The causal scheme's horizon (chunks masked at the window's start) is drawn from 1..forward_chunks."""
    model, tokenizer = build(dataset.recordings, forward_chunks=forward_chunks, schemes=("causal",))
    rec = dataset.recordings[0]
    batch = collate(tokens_of(tokenizer, rec, rec.trials.start[:2]), pack=True)
    model.train()
    torch.manual_seed(1)
    seen = {int((~model(batch)["unit_count_mask"][0]).sum()) for _ in range(40)}  # chunks before the first target
    assert seen == horizons


def test_region_schemes_are_skipped_for_single_region_sessions():
    one, two = np.array(["M1"] * 4), np.array(["M1", "PMd", "M1", "PMd"])
    schemes = ("neuron", "causal", "intra_region", "inter_region")
    assert eligible_schemes(schemes, [two, two]) == list(schemes)
    assert eligible_schemes(schemes, [two, one]) == ["neuron", "causal"]


def test_gradient_recalibration_trains_only_the_new_sessions_identity_offsets(dataset):
    model, tokenizer = build(dataset.recordings)
    rec = dataset.recordings[1]
    model.add_session(rec)
    params = model.freeze_for_recalibration(rec)
    assert params == [model.identity_offset.weight]
    model.train()
    batch = collate(tokens_of(tokenizer, rec, rec.trials.start[:4]), pack=True)
    spec = get_spec("unified")
    loss, _ = spec.objective(model(batch), batch)
    loss.backward()
    assert model.identity_offset.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.parameters() if p is not model.identity_offset.weight)


def test_counts_are_the_spikes_per_chunk(dataset):
    model, tokenizer = build(dataset.recordings)
    rec = dataset.recordings[0]
    tokens = tokenizer(rec.window(0.0, 1.0))
    masks = UnitMasks("neuron", torch.ones(1, rec.n_units, dtype=torch.bool),
                      torch.ones(1, rec.n_units, dtype=torch.bool), 0)  # fmt: skip
    with torch.no_grad():
        out = model(collate([tokens], pack=True), masks)
    expected = rec.bin(model.config.chunk, 0.0, 1.0).T  # [U, C]
    np.testing.assert_array_equal(out["unit_counts"].numpy(), expected)


def test_calibrate_takes_trial_indices_as_the_transfer_protocol_passes_them(dataset):
    model, _ = build(dataset.recordings)
    rec = dataset.recordings[0]
    model.calibrate(rec, [2, 5])
    by_index = model._calibration[rec.session][1]
    model.calibrate(rec, starts=rec.trials.start[[2, 5]])
    assert by_index.shape == (rec.n_units, 2, model.config.id_bins)
    assert torch.equal(by_index, model._calibration[rec.session][1])


def test_spikefm_eval_calibrates_and_forgets_the_scored_session(dataset):
    """``spikefm.eval.predict`` calibrates a calibrating model on fixed train trials and forgets
    them after (it raised AttributeError: unified had no ``forget``)."""
    from spikefm.eval.evaluate import predict, score

    model, tokenizer = build(dataset.recordings)
    rec = dataset.recordings[0]
    scores = score(predict(model, tokenizer, rec, split="val", pack=True))
    assert np.isfinite(scores["decode R2"])
    assert model.calibrated_sessions == []
    model.calibrate(rec)
    assert model.calibrated_sessions == [rec.session]
    model.forget()
    assert model.calibrated_sessions == []


def test_the_lookup_table_ablation_has_a_row_per_unit_and_recalibrates_new_sessions_by_gradient(dataset):
    first, second = dataset.recordings
    model, tokenizer = build([first], identity="table", triggered_input=False)
    assert model.id_encoder is None and model.unit_table.keys == first.unit_keys()
    with pytest.raises(ValueError, match="no calibration"):
        model.calibrate(first)
    with pytest.raises(KeyError):  # a new session's units have no row until add_session
        model(collate(tokens_of(tokenizer, second, second.trials.start[:2]), pack=True))
    model.add_session(second)
    params = model.freeze_for_recalibration(second)
    assert params == [model.unit_table.weight]
    model.train()
    batch = collate(tokens_of(tokenizer, second, second.trials.start[:4]), pack=True)
    loss, _ = get_spec("unified").objective(model(batch), batch)
    loss.backward()
    grad = model.unit_table.weight.grad
    rows = model.unit_table.lookup(second.unit_keys())
    assert grad[rows].abs().sum() > 0 and grad[model.unit_table.lookup(first.unit_keys())].abs().sum() == 0


def test_spikefm_eval_scores_the_lookup_table_ablation_without_calibrating(dataset):
    from spikefm.eval.evaluate import predict

    rec = dataset.recordings[0]
    model, tokenizer = build([rec], identity="table", triggered_input=False)
    assert not model.calibrates
    out = predict(model, tokenizer, rec, split="val", window=1.0, pack=True)
    assert out.behavior is not None and np.isfinite(out.behavior).all()


def test_registered_calibration_gives_the_readout_what_calibration_windows_in_the_batch_give(dataset):
    """calibrate(recording) stores each unit's triggered state over its calibration windows, so scoring one window
    alone reads the same count readout as scoring it next to those windows flagged as calibration."""
    rec = dataset.recordings[0]
    model, tokenizer = build([rec])
    train = np.flatnonzero(np.asarray(rec.trials.columns["split"]).astype(str) == "train")[:4]
    scored = np.flatnonzero(np.asarray(rec.trials.columns["split"]).astype(str) == "test")[0]
    model.calibrate(rec, trials=train)
    assert model._features[rec.session].shape == (rec.n_units, model.config.rnn_dim + 1)
    none = torch.zeros(1, rec.n_units, dtype=torch.bool)
    with torch.no_grad():
        alone = model(collate(tokens_of(tokenizer, rec, rec.trials.start[[scored]]), pack=True),
                      UnitMasks("neuron", none, none, 0))
        windows = tokens_of(tokenizer, rec, rec.trials.start[[*train, scored]])
        flags = torch.tensor([True] * len(train) + [False])
        model.forget(rec.session)
        model.calibrate(rec, trials=train)  # identities (IDEncoder) registered; the triggered state is overridden ...
        model._features.pop(rec.session)  # ... by the batch's calibration windows here
        together = model(collate(windows, pack=True), UnitMasks("neuron", torch.zeros(5, rec.n_units, dtype=torch.bool),
                                                                 torch.zeros(5, rec.n_units, dtype=torch.bool), 0),
                         calibration=flags)
    held = int(rec.units.heldout.sum())
    torch.testing.assert_close(alone["unit_log_rates"], together["unit_log_rates"][-held:], atol=1e-5, rtol=1e-5)
    model.calibrate(rec, trials=train)  # the registered features travel with the model's state dict
    copy, _ = build([rec])
    copy.load_state_dict(model.state_dict())
    torch.testing.assert_close(copy._features[rec.session], model._features[rec.session])
    model.forget(rec.session)
    assert rec.session not in model._features


def test_calibration_needs_no_behaviour(dataset):
    """Calibration data is unlabeled: a recording without behaviour calibrates (the triggered identity
    tokenized calibration windows with behaviour queries and raised), to the same identities."""
    model, _ = build(dataset.recordings)
    rec = dataset.recordings[0]
    model.calibrate(rec, [0, 1, 2])
    labeled = model._features[rec.session].clone()
    model.calibrate(replace(rec, behavior={}), [0, 1, 2])
    torch.testing.assert_close(model._features[rec.session], labeled)


def test_binned_input_keeps_only_each_spikes_bin(dataset):
    """With ``input_bin``, moving a spike inside its bin changes nothing; exact times change the output."""
    rec = dataset.recordings[0]
    outputs = {}
    for input_bin in (None, 0.0625):
        model, tokenizer = build(dataset.recordings, input_bin=input_bin, **EXACT)
        tokens = tokenizer(rec.window(0.0, 1.0))
        spike = np.flatnonzero(tokens.token_type == TokenType.SPIKE)[5]
        nudged = tokens.timestamps.copy()
        nudged[spike] = np.floor(nudged[spike] / 0.0625) * 0.0625 + 0.06  # same 1/16 s bin, other time
        with torch.no_grad():
            outputs[input_bin] = [model(collate([t], pack=True))["behavior"]
                                  for t in (tokens, replace(tokens, timestamps=nudged))]  # fmt: skip
    torch.testing.assert_close(*outputs[0.0625])
    assert not torch.allclose(*outputs[None])


def test_input_bin_must_divide_the_chunk():
    with pytest.raises(ValueError, match="must divide"):
        build_config("unified", "tiny", input_bin=0.03)


def test_forward_chunks_must_be_positive():
    with pytest.raises(ValueError, match="forward_chunks"):
        build_config("unified", "tiny", forward_chunks=0)


def test_a_model_without_behaviour_trains_on_counts_and_says_it_cannot_stream_behaviour(dataset):
    rec = replace(dataset.recordings[0], behavior={})
    model, tokenizer = build([rec], behavior_keys=())
    model.train()
    batch = collate(tokens_of(tokenizer, rec, rec.trials.start[:4]), pack=True)
    loss, _ = get_spec("unified").objective(model(batch), batch)
    assert torch.isfinite(loss)
    model.eval().calibrate(rec)
    with pytest.raises(ValueError, match="decodes no behaviour"):
        model.prepare_stream(rec.unit_keys(), rec.session, torch.zeros(5, dtype=torch.float64))


def _invariant_and_streaming(model, tokenizer, rec):
    """Assert that permuting units changes nothing and that streaming ``rec``'s first second (after
    ``calibrate``) equals the offline pass; return (that second's batch, its offline behaviour)."""
    samples = tokens_of(tokenizer, rec, rec.trials.start[:4])
    with torch.no_grad():
        base = model(collate(samples, pack=True))
        shuffled = model(collate([permuted(t, np.random.default_rng(0)) for t in samples], pack=True))
    torch.testing.assert_close(shuffled["behavior"], base["behavior"], atol=1e-5, rtol=1e-5)
    model.calibrate(rec)
    tokens = tokenizer(rec.window(0.0, 1.0))
    batch = collate([tokens], pack=True)
    with torch.no_grad():
        offline = model(batch)["behavior"][0]
    inputs = np.flatnonzero(~rec.units.heldout)
    spikes = (tokens.token_type == TokenType.SPIKE) & np.isin(tokens.unit_index, inputs)
    times, units = batch.timestamps.double().numpy()[spikes], np.searchsorted(inputs, tokens.unit_index[spikes])
    streamed = StreamingDecoder(model, [rec.unit_keys()[i] for i in inputs], rec.session).run(times, units, start=0.0,
                                                                                             n_chunks=16)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=1e-5)
    return batch, offline


def _with_triggered_input(model):
    """The two-pass model with its triggered-input embedding switched on (it starts at zero: the one-pass model)."""
    torch.manual_seed(1)
    torch.nn.init.normal_(model.input_triggered[-1].weight, std=0.2)
    torch.nn.init.normal_(model.input_triggered[-1].bias, std=0.2)
    return model


@pytest.mark.parametrize("input_ridge", [None, 0.5])
def test_triggered_input_is_permutation_invariant_and_streams_as_the_offline_pass(dataset, input_ridge):
    model, tokenizer = build(dataset.recordings, triggered_input=True, input_ridge=input_ridge, **EXACT)
    model = _with_triggered_input(model)
    batch, offline = _invariant_and_streaming(model, tokenizer, dataset.recordings[0])
    model.input_triggered[-1].weight.data.zero_()
    model.input_triggered[-1].bias.data.zero_()
    with torch.no_grad():  # the embedding is what changes the output
        assert not torch.allclose(model(batch)["behavior"][0], offline, atol=1e-4)


@pytest.mark.parametrize("input_ridge", [None, 0.5])
def test_triggered_input_registers_what_calibration_windows_in_the_batch_give(dataset, input_ridge):
    """The input identities' triggered states from calibrate() equal those the same windows give in the batch
    (whitened or not)."""
    rec = dataset.recordings[0]
    model, tokenizer = build([rec], triggered_input=True, input_ridge=input_ridge)
    model = _with_triggered_input(model)
    split = np.asarray(rec.trials.columns["split"]).astype(str)
    train, scored = np.flatnonzero(split == "train")[:4], np.flatnonzero(split == "test")[0]
    model.calibrate(rec, trials=train)
    assert model._input_features[rec.session].shape == (rec.n_units, model.config.rnn_dim + 1)
    none = torch.zeros(5, rec.n_units, dtype=torch.bool)
    with torch.no_grad():
        alone = model(collate(tokens_of(tokenizer, rec, rec.trials.start[[scored]]), pack=True),
                      UnitMasks("neuron", none[:1], none[:1], 0))
        model._features.pop(rec.session)
        model._input_features.pop(rec.session)  # both triggered tables now come from the flagged batch windows
        together = model(collate(tokens_of(tokenizer, rec, rec.trials.start[[*train, scored]]), pack=True),
                         UnitMasks("neuron", none, none, 0), calibration=torch.tensor([True] * len(train) + [False]))
    torch.testing.assert_close(alone["behavior"][0], together["behavior"][-1], atol=1e-5, rtol=1e-5)
    model.calibrate(rec, trials=train)  # the registered features travel with the state dict; forget drops them
    copy, _ = build([rec], triggered_input=True, input_ridge=input_ridge)
    copy.load_state_dict(model.state_dict())
    torch.testing.assert_close(copy._input_features[rec.session], model._input_features[rec.session])
    model.forget(rec.session)
    assert rec.session not in model._input_features and rec.session not in model._features


def test_triggered_input_trains_its_embedding_and_needs_idencoder_identities(dataset):
    model, tokenizer = build(dataset.recordings, triggered_input=True)
    model.train()
    rec = dataset.recordings[0]
    out = model(collate(tokens_of(tokenizer, rec, rec.trials.start[:6]), pack=True))
    loss = get_spec("unified").objective(out, collate(tokens_of(tokenizer, rec, rec.trials.start[:6]), pack=True))[0]
    loss.backward()
    assert model.input_triggered[-1].weight.grad.abs().sum() > 0  # the second pass reads the embedding
    with pytest.raises(ValueError, match="triggered_input"):
        build_config("unified", "tiny", triggered_input=True, identity="table")
    for ridge in (0.0, -1.0):
        with pytest.raises(ValueError, match="input_ridge"):
            build_config("unified", "tiny", input_ridge=ridge)
    assert build_config("unified", "tiny").input_ridge == 0.1  # the recipe since the thirty-fourth sitting



def test_population_frames_are_permutation_invariant_and_stream_as_the_offline_pass(dataset):
    model, tokenizer = build(dataset.recordings, population_pcs=4, **EXACT)
    rec = dataset.recordings[0]  # a training session: calibrating it keeps its frame (from its train trials)
    batch, offline = _invariant_and_streaming(model, tokenizer, rec)
    model.population.register(rec.session, rec.unit_keys(), np.zeros((rec.n_units, 4)), permanent=True)
    with torch.no_grad():  # the loadings are what the embedding reads
        assert not torch.allclose(model(batch)["behavior"][0], offline, atol=1e-4)


def test_a_new_session_gets_its_population_frame_from_calibration_and_loses_it_with_forget(dataset):
    model, tokenizer = build(dataset.recordings[:1], population_pcs=4)
    new = dataset.recordings[1]
    batch = collate(tokens_of(tokenizer, new, new.trials.start[:2]), pack=True)
    with pytest.raises(ValueError, match="no population frame"):
        model(batch)
    model.calibrate(new)
    assert new.session in model.population and torch.isfinite(model(batch)["behavior"]).all()
    model.forget(new.session)
    assert new.session not in model.population and dataset.recordings[0].session in model.population
    with pytest.raises(ValueError, match="identity: table"):
        build_config("unified", "tiny", population_pcs=4, identity="table", triggered_input=False)
