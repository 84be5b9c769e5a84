import pytest
import torch

from spikefm.nn.dropout import FastDropout, fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.2, 0.4, 0.5])
def test_fast_dropout_keeps_the_expected_fraction_and_mean(p):
    torch.manual_seed(0)
    x = torch.ones(400_000)
    out = fast_dropout(x, p)
    kept = out != 0
    n = x.numel()
    sd = (p * (1 - p) / n) ** 0.5
    assert abs(kept.float().mean().item() - (1 - p)) < 5 * sd
    assert abs(out.mean().item() - 1.0) < 5 * sd / (1 - p)  # inverse-probability scaling keeps the mean
    torch.testing.assert_close(out[kept], torch.full_like(out[kept], 1 / (1 - p)), rtol=1e-4, atol=0)


def test_fast_dropout_masks_are_independent_of_position():
    torch.manual_seed(1)
    kept = (fast_dropout(torch.ones(4, 200_000), 0.5) != 0).float()  # the four 16-bit lanes of each int64 draw
    lanes = kept.view(-1, 4).mean(0)
    assert (lanes - 0.5).abs().max() < 5 * (0.25 / kept.numel() * 4) ** 0.5
    neighbours = (kept.view(-1)[1:] * kept.view(-1)[:-1]).mean()
    assert abs(neighbours.item() - 0.25) < 0.005


def test_fast_dropout_gradient_is_the_scaled_mask_and_eval_is_identity():
    torch.manual_seed(2)
    x = torch.randn(3, 50, 8, requires_grad=True)
    layer = FastDropout(0.3)
    out = layer(x)
    out.sum().backward()
    mask = (out != 0).to(x.dtype)
    torch.testing.assert_close(x.grad, mask / (1 - layer.p), rtol=1e-4, atol=0)
    torch.testing.assert_close(out, x.detach() * x.grad)
    layer.eval()
    assert layer(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert torch.equal(fast_dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fast_dropout(x, 1.5)
