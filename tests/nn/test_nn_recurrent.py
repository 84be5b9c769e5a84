import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn import GRU, RecurrentCore, SelectiveSSM, selective_scan

FAST = settings(max_examples=25, deadline=None)


def run_steps(core, x, state):
    ys = []
    for t in range(x.shape[1]):
        y, state = core.step(x[:, t], state)
        ys.append(y)
    return torch.stack(ys, 1), state


@pytest.mark.parametrize(
    "core",
    [
        lambda: GRU(input_dim=5, hidden_dim=6, num_layers=2),
        lambda: SelectiveSSM(dim=5, state_dim=3, expand=2, num_layers=2, chunk_size=4),
    ],
    ids=["gru", "ssm"],
)
@pytest.mark.parametrize("length", [1, 7])
def test_step_equals_full_pass(core, length):
    torch.manual_seed(0)
    core = core().eval()
    assert isinstance(core, RecurrentCore)
    x = torch.randn(3, length, 5)
    y, state = core(x)
    y_steps, state_steps = run_steps(core, x, core.initial_state(3, x.device, x.dtype))
    torch.testing.assert_close(y_steps, y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state_steps, state, atol=1e-5, rtol=1e-5)
    # continuing from a carried state equals one long pass
    y1, s1 = core(x[:, :3])
    y2, s2 = core(x[:, 3:], s1) if length > 3 else (y1[:, :0], s1)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s2, state, atol=1e-5, rtol=1e-5)


def naive_scan(log_decay, drive, h0):
    h, out = h0, []
    for t in range(log_decay.shape[1]):
        h = torch.exp(log_decay[:, t]) * h + drive[:, t]
        out.append(h)
    return torch.stack(out, 1)


@FAST
@given(st.integers(1, 12), st.integers(1, 8), st.integers(0, 2**16))
def test_selective_scan_matches_recurrence(length, chunk, seed):
    gen = torch.Generator().manual_seed(seed)
    log_decay = -torch.rand(2, length, 3, 2, generator=gen, dtype=torch.float64) * 3
    drive = torch.randn(2, length, 3, 2, generator=gen, dtype=torch.float64)
    h0 = torch.randn(2, 3, 2, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(selective_scan(log_decay, drive, h0, chunk_size=chunk), naive_scan(log_decay, drive, h0))


def test_selective_scan_strong_decay_stays_finite():
    log_decay = torch.full((1, 64, 2), -50.0, requires_grad=True)
    drive = torch.ones(1, 64, 2)
    h = selective_scan(log_decay, drive, torch.ones(1, 2), chunk_size=64)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, torch.ones(1, 64, 2))
    h.sum().backward()
    assert torch.isfinite(log_decay.grad).all()
    with pytest.raises(ValueError, match="chunk_size"):
        selective_scan(log_decay, drive, torch.ones(1, 2), chunk_size=0)


def test_ssm_chunk_size_does_not_change_result():
    torch.manual_seed(0)
    ssm = SelectiveSSM(dim=4, state_dim=2, chunk_size=1)
    x = torch.randn(2, 9, 4)
    ref, ref_state = ssm(x)
    for chunk in (2, 5, 16):
        ssm.chunk_size = chunk
        y, state = ssm(x)
        torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(state, ref_state, atol=1e-5, rtol=1e-5)


def test_ssm_is_causal_and_trains():
    torch.manual_seed(0)
    ssm = SelectiveSSM(dim=4, state_dim=2)
    x = torch.randn(1, 6, 4)
    y = x.clone()
    y[:, 4:] = torch.randn(1, 2, 4)
    torch.testing.assert_close(ssm(y)[0][:, :4], ssm(x)[0][:, :4])
    ssm(x)[0].square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in ssm.parameters())


def test_initial_state_shapes():
    gru = GRU(input_dim=3, hidden_dim=4, num_layers=2)
    ssm = SelectiveSSM(dim=3, state_dim=5, expand=2, num_layers=3)
    assert gru.initial_state(2, torch.device("cpu"), torch.float64).shape == (2, 2, 4)
    s = ssm.initial_state(2, torch.device("cpu"), torch.float64)
    assert s.shape == (3, 2, 6, 5) and s.dtype == torch.float64
