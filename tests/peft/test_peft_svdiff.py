"""SV-DIFF: the factorised application equals the reference formula; SVDs come from the disk
cache; evaluation builds W' once."""

from __future__ import annotations

import stat

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from memctl.peft import apply
from memctl.peft.methods._svdiff_layers import SVDiffLayer, SVDiffNorm


def _reference(base: nn.Module, delta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """W' = U diag(ReLU(s + delta)) V^T, rebuilt from scratch (the paper's formula)."""
    w = base.weight.detach()
    u, s, vh = torch.linalg.svd(w.reshape(w.shape[0], -1), full_matrices=False)
    w2 = ((u * F.relu(s + delta)) @ vh).reshape(w.shape)
    if isinstance(base, nn.Conv2d):
        return F.conv2d(x, w2, base.bias, base.stride, base.padding, base.dilation)
    return F.linear(x, w2, base.bias)


@pytest.mark.parametrize("mode", ["factorised", "auto", "rebuild"])
@pytest.mark.parametrize(
    "base, shape",
    [
        (nn.Linear(24, 40), (3, 7, 24)),
        (nn.Linear(40, 24), (3, 7, 40)),
        (nn.Linear(8, 8), (3, 100, 8)),  # many tokens, narrow: auto rebuilds W'
        (nn.Conv2d(6, 10, 3, stride=2, padding=1), (2, 6, 9, 9)),
        (nn.Conv2d(12, 5, 1), (2, 12, 4, 4)),
    ],
)
def test_training_path_matches_reference(base, shape, mode):
    torch.manual_seed(0)
    layer = SVDiffLayer(base, cache=None, mode=mode)
    with torch.no_grad():  # shifts that cross zero exercise the ReLU
        layer.delta.normal_(0, 0.3)
    x = torch.randn(shape)
    delta_ref = layer.delta.detach().clone().requires_grad_(True)
    ref = _reference(base, delta_ref, x)
    out = layer(x)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)

    g = torch.randn_like(ref)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    scale = delta_ref.grad.abs().max()
    torch.testing.assert_close(
        layer.delta.grad / scale, delta_ref.grad / scale, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize(
    "base, shape", [(nn.LayerNorm(16), (4, 16)), (nn.GroupNorm(4, 8), (2, 8, 3, 3))]
)
def test_norm_scalar_is_the_svd_of_its_weight(base, shape):
    with torch.no_grad():
        base.weight.normal_()
    layer = SVDiffNorm(base)
    with torch.no_grad():
        layer.delta.fill_(0.7)
    x = torch.randn(shape)
    w = base.weight.detach()
    s = torch.linalg.svdvals(w[None])[0]
    w2 = w * F.relu(s + 0.7) / s
    if isinstance(base, nn.GroupNorm):
        ref = F.group_norm(x, base.num_groups, w2, base.bias, base.eps)
    else:
        ref = F.layer_norm(x, base.normalized_shape, w2, base.bias, base.eps)
    torch.testing.assert_close(layer(x), ref, rtol=1e-5, atol=1e-6)


def test_auto_chooses_by_flops():
    layer = SVDiffLayer(nn.Linear(8, 8), cache=None, mode="auto")
    assert layer._rebuild_cheaper(torch.zeros(3, 100, 8))
    assert not layer._rebuild_cheaper(torch.zeros(3, 2, 8))


def test_modes_agree_on_a_unet(make_unet, batch):
    x, t, ctx = batch
    outs, grads = [], []
    for mode in ("factorised", "rebuild", "auto"):
        a = apply(make_unet(), "svdiff", [1] * 16, mode=mode)
        torch.manual_seed(3)
        with torch.no_grad():
            for p in a.trainable_parameters():
                p.normal_(0, 0.05)
        out = a.unet(x, t, encoder_hidden_states=ctx).sample
        out.square().mean().backward()
        outs.append(out.detach())
        grads.append(torch.cat([p.grad.flatten() for p in a.trainable_parameters()]))
    for out, grad in zip(outs[1:], grads[1:], strict=True):
        torch.testing.assert_close(out, outs[0], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(grad, grads[0], rtol=1e-4, atol=1e-5 * grads[0].abs().max())


def test_eval_weight_built_once(monkeypatch):
    layer = SVDiffLayer(nn.Linear(8, 8), cache=None, mode="factorised")
    calls = []
    real = SVDiffLayer.updated_weight
    monkeypatch.setattr(SVDiffLayer, "updated_weight", lambda s: calls.append(1) or real(s))
    x = torch.randn(2, 8)
    with torch.no_grad():
        layer(x)
        layer(x)
        assert len(calls) == 1
        layer.delta.add_(0.1)  # an optimizer step invalidates it
        layer(x)
    assert len(calls) == 2


def test_svd_disk_cache(make_unet, batch, tmp_path, monkeypatch):
    x, t, ctx = batch
    a = apply(make_unet(), "svdiff", [1] + [0] * 15, cache_dir=tmp_path)
    assert not list(tmp_path.iterdir())  # applying needs no SVD
    a.unet(x, t, encoder_hidden_states=ctx)
    files = list(tmp_path.glob("*.safetensors"))
    linears = [m for m in a.unet.modules() if isinstance(m, SVDiffLayer)]
    assert len(files) == len(linears) > 0
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)

    def no_svd(*args, **kwargs):
        raise AssertionError("SVD recomputed despite the cache")

    monkeypatch.setattr(torch.linalg, "svd", no_svd)
    monkeypatch.setenv("MEMCTL_SVD_CACHE", str(tmp_path))
    b = apply(make_unet(), "svdiff", [1] + [0] * 15)  # cache dir from the environment
    b.unet(x, t, encoder_hidden_states=ctx)


def test_param_groups_give_norm_scalars_their_own_lr(make_unet):
    a = apply(make_unet(), "svdiff", [1] * 16)
    mats, norms = a.param_groups(1e-3)
    assert norms["lr"] == pytest.approx(1e-6)
    assert all(p.numel() == 1 for p in norms["params"])
    assert len(mats["params"]) + len(norms["params"]) == len(a.trainable_parameters())


def test_factors_stay_fp32_and_out_of_state_dict(make_unet, batch):
    x, t, ctx = batch
    a = apply(make_unet(), "svdiff", [1] * 16)
    a.unet(x, t, encoder_hidden_states=ctx)
    a.unet.to(torch.float64)
    layer = next(m for m in a.unet.modules() if isinstance(m, SVDiffLayer))
    assert layer.U.dtype == torch.float32 and layer.delta.dtype == torch.float64
    assert not any(k.endswith((".U", ".S", ".Vh")) for k in a.unet.state_dict())
