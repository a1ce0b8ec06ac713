"""A 0 bit leaves its block bitwise unchanged; all zeros train nothing; all ones train exactly
the method's set."""

from __future__ import annotations

import pytest
import torch

from memctl.peft import METHODS, SPACES, apply, num_bits


def _train(adapter, batch, steps: int = 2) -> None:
    x, t, ctx = batch
    groups = adapter.param_groups(lr=1e-2)
    if not groups:  # freeze
        return
    opt = torch.optim.AdamW(groups, weight_decay=0.1)
    for _ in range(steps):
        out = adapter.unet(x, t, encoder_hidden_states=ctx).sample
        out.square().mean().backward()
        opt.step()
        opt.zero_grad()


def _snapshot(unet) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in unet.named_parameters()}


def _slot_names(adapter, slot: str) -> set[str]:
    return {n for n, o in adapter.owners.items() if o == slot}


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_zero_bit_freezes_its_block(method, space, batch, make_unet):
    tiny_unet = make_unet
    unet = tiny_unet()
    n = num_bits(unet, space)
    k = 2  # a down-path slot: gradients reach it only through the blocks above
    everything = apply(tiny_unet(), method, [1] * n, space)
    owned = _slot_names(everything, everything.slots[k])
    assert owned or method == "freeze"

    bits = [1] * n
    bits[k] = 0
    adapter = apply(unet, method, bits, space)
    assert not _slot_names(adapter, adapter.slots[k])
    before = _snapshot(unet)
    _train(adapter, batch)
    after = dict(unet.named_parameters())
    moved = [n for n in adapter.params if not torch.equal(before[n], after[n])]
    assert moved or method == "freeze"
    for name in owned & set(after):  # the block's own tensors; adapter tensors don't exist
        assert torch.equal(before[name], after[name]), name
    for name, p in after.items():
        if name not in adapter.params:
            assert not p.requires_grad, name
            assert torch.equal(before[name], p), name


@pytest.mark.parametrize("space", list(SPACES))
@pytest.mark.parametrize("method", sorted(METHODS))
def test_all_zeros_and_all_ones(method, space, make_unet):
    tiny_unet = make_unet
    unet = tiny_unet()
    n = num_bits(unet, space)
    zeros = apply(unet, method, [0] * n, space)
    if method == "full" or space == "paper13":
        # Only the always-trained remainder, owned by no slot.
        assert set(zeros.owners.values()) <= {"remainder"}
    else:
        assert zeros.trainable_parameters() == []
    assert sum(p.requires_grad for p in unet.parameters()) == len(zeros.trainable_parameters())

    ones = apply(tiny_unet(), method, [1] * n, space)
    count = ones.count()
    per_block = count["per_block"]
    assert len(per_block) == n
    assert all(per_block.values()) or method == "freeze"
    if method != "full" and space != "paper13":  # nothing trains outside the slots
        assert count["trainable"] == sum(per_block.values()) and not count["other"]
    assert count["trainable"] == sum(p.numel() for p in ones.unet.parameters() if p.requires_grad)
