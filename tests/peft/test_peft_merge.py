"""merge() bakes the adapter into plain diffusers weights: a stock reload gives the same
outputs as the in-memory PEFT model."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from memctl.peft import apply, load_adapter, num_bits, save_adapter

CASES = [
    ("svdiff", "blocks16", ("resnets", "t2d_proj_norm")),  # Linear, Conv2d, Layer/GroupNorm
    ("svdiff", "paper13", ()),
    ("difffit", "blocks16", ()),
    ("difffit", "attn32", ()),
    ("lora", "blocks16", ("t2d_proj_norm",)),
    ("attention", "blocks16", ()),
    ("full", "blocks16", ()),
]


def _perturb(adapter, seed: int = 0) -> None:
    """Move every trained tensor off its initial value, as training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in adapter.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def _out(unet, batch) -> torch.Tensor:
    x, t, ctx = batch
    return unet(x, t, encoder_hidden_states=ctx).sample


@pytest.mark.parametrize("method, space, always", CASES)
def test_merge_reload_matches(method, space, always, make_unet, batch, tmp_path):
    unet = make_unet()
    bits = [1, 0] * (num_bits(unet, space) // 2) + [1] * (num_bits(unet, space) % 2)
    adapter = apply(unet, method, bits, space, always)
    _perturb(adapter)
    with torch.no_grad():
        expected = _out(unet, batch)
    trained = _out(unet, batch).detach()  # the training path (factorised for svdiff)
    torch.testing.assert_close(trained, expected, rtol=1e-5, atol=1e-5)

    save_adapter(adapter, tmp_path / "adapter")
    merged = adapter.merge()
    assert not any("base" in n or "lora" in n or "gamma" in n for n, _ in merged.named_parameters())
    assert isinstance(merged, UNet2DConditionModel)
    merged.save_pretrained(tmp_path / "unet")
    reloaded = UNet2DConditionModel.from_pretrained(tmp_path / "unet").eval()
    with torch.no_grad():
        torch.testing.assert_close(_out(reloaded, batch), expected, rtol=1e-5, atol=1e-5)

    # The saved adapter re-applies to a fresh base model.
    again = load_adapter(make_unet(), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(_out(again.unet, batch), expected, rtol=1e-5, atol=1e-5)


def test_state_dict_round_trip(make_unet):
    a = apply(make_unet(), "difffit", [1] * 16)
    _perturb(a)
    b = apply(make_unet(), "difffit", [1] * 16)
    b.load_state_dict(a.state_dict())
    assert list(a.state_dict()) == list(b.state_dict())
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert all(".gamma_" in k or k.endswith(("bias", "weight")) for k in a.state_dict())


def test_deepcopy_keeps_its_own_scales(make_unet, batch):
    import copy

    a = apply(make_unet(), "difffit", [1] * 16)
    twin = copy.deepcopy(a.unet)
    with torch.no_grad():
        for n, p in a.unet.named_parameters():
            if ".gamma_" in n:
                p.zero_()  # the original now outputs only its residual path
        assert not torch.allclose(_out(twin, batch), _out(a.unet, batch))
