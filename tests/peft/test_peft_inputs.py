"""Bad masks, names and files fail with a UserError naming the field; the CLI turns them into
one line and exit code 2."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from memctl.cli import main
from memctl.errors import UserError
from memctl.peft import MaskSpec, apply, block_names, parse_bits


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(method="svdiff", bits=[1] * 15), "bits"),
        (dict(method="svdiff", bits=[1] * 15 + [2]), "bits"),
        (dict(method="nope", bits=[1] * 16), "method"),
        (dict(method="svdiff", bits=[1] * 16, space="blocks17"), "space"),
        (dict(method="svdiff", bits=[1] * 16, always=["heads"]), "always"),
    ],
)
def test_bad_input_names_the_field(kwargs, field, make_unet):
    with pytest.raises(UserError, match=f"^{field}"):
        MaskSpec(**kwargs)
    args = dict(space="blocks16", always=()) | kwargs
    with pytest.raises(UserError, match=f"^{field}"):
        apply(make_unet(), args["method"], args["bits"], args["space"], args["always"])


def test_unknown_option_and_double_apply(make_unet):
    with pytest.raises(UserError, match="lora"):
        apply(make_unet(), "lora", [1] * 16, ranks=3)
    unet = make_unet()
    apply(unet, "attention", [1] * 16)
    with pytest.raises(UserError, match="already"):
        apply(unet, "attention", [1] * 16)


@pytest.mark.parametrize("text", ["1101", "1,1,0,1", "[1, 1, 0, 1]", " 1 1 0 1 "])
def test_parse_bits(text):
    assert parse_bits(text) == [1, 1, 0, 1]


@pytest.mark.parametrize("text", ["", "11a1", "1,2", "1,,x"])
def test_parse_bits_rejects(text):
    with pytest.raises(UserError, match="mask"):
        parse_bits(text)


def test_mask_file_round_trip_and_errors(make_unet, tmp_path):
    adapter = apply(make_unet(), "svdiff", [1, 0] * 8)
    path = MaskSpec.from_adapter(adapter).save(tmp_path / "mask.json")
    spec = MaskSpec.load(path)
    assert spec.bits == [1, 0] * 8 and spec.blocks == block_names(make_unet())
    assert spec.counts["trainable"] == adapter.count()["trainable"]
    assert spec.apply(make_unet()).count()["trainable"] == adapter.count()["trainable"]

    data = json.loads(path.read_text())
    for change, field in [
        ({"bits": [1] * 3}, "bits"),
        ({"method": "x"}, "method"),
        ({"colour": 1}, "colour"),
    ]:
        path.write_text(json.dumps(data | change))
        with pytest.raises(UserError, match=f"mask {path}: .*{field}"):
            MaskSpec.load(path)
    path.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        MaskSpec.load(path)


def test_cli_count(tmp_path, make_unet):
    runner = CliRunner()
    out = runner.invoke(
        main,
        [
            "peft",
            "count",
            "--arch",
            "sd15",
            "--method",
            "svdiff",
            "--space",
            "paper13",
            "--mask",
            "1,1,0,1,0,1,1,1,1,0,1,0,1",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "195,017 of 859,520,964" in out.output and "0.0227%" in out.output

    make_unet().save_config(tmp_path / "unet")
    out = runner.invoke(
        main,
        [
            "peft",
            "count",
            "--model",
            str(tmp_path),
            "--method",
            "attention",
            "--mask",
            "1" * 16,
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["total"] > result["trainable"] == sum(result["per_block"].values()) > 0

    out = runner.invoke(
        main, ["peft", "count", "--arch", "sd15", "--method", "svdiff", "--mask", "1101"]
    )
    assert out.exit_code == 2
    assert out.output.strip().splitlines() == [
        "memctl: error: bits: space blocks16 needs 16 bits, got 4"
    ]
