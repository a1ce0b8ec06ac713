"""Mask files: the one record trials, retrains, baselines and adapters write, and
`retrain --mask` reading any of them (a file or the folder holding it)."""

import json

import pytest

from memctl.errors import UserError
from memctl.runs.target import mask_file, mask_file_target

BITS = [1, 0] * 8


def _write(path, record) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def test_reads_the_mask_of_a_trial_a_retrain_and_an_adapter(prepared, tmp_path):
    from memctl import peft
    from memctl.models.load import load_components

    cfg, ws = prepared
    blocks = [f"b{i}" for i in range(16)]
    trial = tmp_path / "trials/memctl/00003"
    _write(trial / "mask.json", mask_file("svdiff", "blocks16", [], BITS, blocks,
                                          "study memctl trial 3"))
    retrain = tmp_path / "retrain/run"
    _write(retrain / "mask.json", mask_file("difffit", "blocks16", [], BITS, blocks, "x",
                                            trainable=10, total=100, percent=10.0))
    unet = load_components(ws.model_dir, text=False).unet
    adapter = peft.save_adapter(peft.apply(unet, "attention", BITS, "blocks16"),
                                tmp_path / "adapter")
    assert isinstance(json.loads((adapter / "mask.json").read_text())["bits"], list)
    for folder, method in ((trial, "svdiff"), (retrain, "difffit"), (adapter, "attention")):
        for given in (folder, folder / "mask.json"):
            target = mask_file_target(given, cfg)
            assert target.bits == BITS and target.cfg.peft.method == method, given
            assert target.cfg.peft.space == "blocks16" and len(target.block_names) == 16
            assert target.source == f"mask file {folder / 'mask.json'}"


@pytest.mark.parametrize(("record", "message"), [
    ({"bits": "1021", "method": "svdiff"}, "bits: expected 0s and 1s"),
    ({"bits": "1" * 16, "method": "dropout"}, "method: must be one of"),
    ({"bits": "1" * 16}, "not a memctl mask file"),
    ("[1, 2", "not a memctl mask file"),
])
def test_bad_mask_files_name_the_file_and_field(prepared, tmp_path, record, message):
    cfg, _ = prepared
    path = tmp_path / "mask.json"
    path.write_text(record if isinstance(record, str) else json.dumps(record))
    with pytest.raises(UserError, match=message) as err:
        mask_file_target(path, cfg)
    assert str(path) in str(err.value)
    with pytest.raises(UserError, match="mask file not found"):
        mask_file_target(tmp_path / "nowhere", cfg)
