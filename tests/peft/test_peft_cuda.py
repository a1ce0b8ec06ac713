"""On a GPU: every method trains under bf16 autocast with its tensors on the model's device;
SV-DIFF factors stay fp32 on the GPU and the merged model matches."""

from __future__ import annotations

import pytest
import torch

from memctl.peft import METHODS, apply
from memctl.peft.methods._svdiff_layers import SVDiffLayer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.fixture(autouse=True)
def exact_fp32(monkeypatch):
    # TF32 convolutions (cuDNN's default) round inputs to 10 bits: a 1e-6 change upstream
    # shows as 1e-3 downstream, hiding what the merge comparison checks.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)


def _step(adapter, batch) -> None:
    x, t, ctx = batch
    groups = adapter.param_groups(lr=1e-2)
    if not groups:
        return
    opt = torch.optim.AdamW(groups)
    for _ in range(2):
        with torch.autocast("cuda", torch.bfloat16):
            loss = adapter.unet(x, t, encoder_hidden_states=ctx).sample.float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_trains_on_cuda(method, make_unet, batch, tmp_path):
    batch = [b.cuda() for b in batch]
    options = {"cache_dir": tmp_path} if method == "svdiff" else {}
    adapter = apply(make_unet().cuda(), method, [1, 0] * 8, always=("resnets",), **options)
    assert all(p.is_cuda for p in adapter.trainable_parameters())
    before = {n: p.detach().clone() for n, p in adapter.params.items()}
    _step(adapter, batch)
    assert method == "freeze" or any(
        not torch.equal(before[n], p) for n, p in adapter.params.items()
    )
    x, t, ctx = batch
    with torch.no_grad():
        expected = adapter.unet(x, t, encoder_hidden_states=ctx).sample
    if method == "svdiff":
        layer = next(m for m in adapter.unet.modules() if isinstance(m, SVDiffLayer))
        assert layer.U.is_cuda and layer.U.dtype == torch.float32
    merged = adapter.merge()
    with torch.no_grad():
        got = merged(x, t, encoder_hidden_states=ctx).sample
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
