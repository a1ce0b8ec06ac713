"""Parameter counts on SD v1.5 (built on the meta device: shapes only, no SVD) agree with
the design reference."""

from __future__ import annotations

import pytest

from memctl.models.arch import SD15_UNET_PARAMS, build_unet
from memctl.peft import apply, block_names, num_bits

BEST13 = [1, 1, 0, 1, 0, 1, 1, 1, 1, 0, 1, 0, 1]


def _count(method, bits, space="blocks16", always=(), **options):
    return apply(build_unet(device="meta"), method, bits, space, always, **options)


def test_sd15_structure():
    unet = build_unet(device="meta")
    assert sum(p.numel() for p in unet.parameters()) == SD15_UNET_PARAMS
    assert (num_bits(unet, "blocks16"), num_bits(unet, "attn32"), num_bits(unet, "paper13")) == (
        16,
        32,
        13,
    )
    assert block_names(unet)[6] == "mid_block.attentions.0"
    assert "up_blocks.1.attentions.2" not in block_names(unet, "paper13")


@pytest.mark.parametrize(
    "method, bits, space, always, options, expected",
    [
        ("attention", [1] * 16, "blocks16", (), {}, 93_536_640),
        ("attention", [1] * 32, "attn32", (), {}, 93_536_640),
        ("svdiff", [1] * 16, "blocks16", (), {}, 118_704),
        ("svdiff", [1] * 16, "blocks16", ("t2d_proj_norm",), {}, 143_680),
        ("svdiff", [1] * 13, "paper13", (), {}, 222_805),
        ("svdiff", BEST13, "paper13", (), {}, 195_017),
        ("difffit", [1] * 13, "paper13", (), {}, 581_124),
        ("lora", [1] * 16, "blocks16", (), {"rank": 4}, 797_184),
        ("full", [1] * 16, "blocks16", (), {}, SD15_UNET_PARAMS),
        ("freeze", [1] * 16, "blocks16", (), {}, 0),
    ],
)
def test_sd15_counts(method, bits, space, always, options, expected):
    count = _count(method, bits, space, always, **options).count()
    assert count["trainable"] == expected
    assert count["total"] == SD15_UNET_PARAMS


def test_sd15_per_block_and_gammas():
    svdiff = _count("svdiff", [1] * 16).count()["per_block"]
    assert svdiff["down_blocks.0.attentions.0"] == 3_203
    assert svdiff["down_blocks.1.attentions.0"] == 6_403
    assert svdiff["mid_block.attentions.0"] == 11_779
    difffit = _count("difffit", [1] * 16)
    assert sum(p.numel() for n, p in difffit.params.items() if ".gamma_" in n) == 137_280
    assert round(_count("svdiff", BEST13, "paper13").count()["percent"], 4) == 0.0227
