"""The windowed transformer core: step equals forward, causal, reads exactly its window, resumes from state."""

import pytest
import torch

from spikefm.nn.recurrent import RecurrentCore, make_core
from spikefm.nn.windowed_core import WindowedTransformer


def core(window: int = 4, layers: int = 2) -> WindowedTransformer:
    torch.manual_seed(0)
    return WindowedTransformer(input_dim=6, hidden_dim=16, layers=layers, heads=2, window=window).eval()


@pytest.mark.parametrize("steps", [3, 4, 11])  # shorter than, equal to and longer than the window
def test_step_over_a_sequence_equals_forward(steps):
    model, x = core(), torch.randn(3, steps, 6)
    with torch.no_grad():
        y, final = model(x)
        state, stepped = model.initial_state(3, x.device, x.dtype), []
        for t in range(steps):
            y_t, state = model.step(x[:, t], state)
            stepped.append(y_t)
    torch.testing.assert_close(torch.stack(stepped, 1), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(state, final)


def test_forward_resumes_from_its_state():
    model, x = core(), torch.randn(2, 9, 6)
    with torch.no_grad():
        whole, _ = model(x)
        head, state = model(x[:, :5])
        tail, _ = model(x[:, 5:], state)
    torch.testing.assert_close(torch.cat([head, tail], 1), whole, atol=1e-5, rtol=1e-5)


def test_each_output_reads_its_own_step_and_the_window_before_it_only():
    model, x = core(window=4), torch.randn(1, 10, 6)
    changed = x.clone()
    changed[:, 3] += 1.0
    with torch.no_grad():
        y, y_changed = model(x)[0], model(changed)[0]
    differs = (y - y_changed).abs().amax(-1)[0] > 1e-6  # [T]
    assert differs.tolist() == [False] * 3 + [True] * 4 + [False] * 3  # steps 3..6 read step 3


def test_it_is_a_recurrent_core_that_trains():
    model, width = make_core("transformer", input_dim=6, hidden_dim=16, layers=1, window=5)
    assert isinstance(model, RecurrentCore) and width == 16
    x, target = torch.randn(4, 12, 6), torch.randn(4, 12, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = (model(x)[0] - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="heads dividing"):
        WindowedTransformer(input_dim=4, hidden_dim=10, heads=3)
