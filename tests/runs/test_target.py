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
    unet = load_components(ws.model_dir, text=False).unet
    blocks = peft.block_names(unet, "blocks16")
    trial = tmp_path / "trials/memctl/00003"
    _write(trial / "mask.json", mask_file("svdiff", "blocks16", [], BITS, blocks,
                                          "study memctl trial 3"))
    retrain = tmp_path / "retrain/run"
    _write(retrain / "mask.json", mask_file("difffit", "blocks16", [], BITS, blocks, "x",
                                            trainable=10, total=100, percent=10.0))
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


def test_a_mask_for_other_blocks_is_refused_naming_them(prepared, tmp_path):
    from memctl import peft
    from memctl.models.load import load_components

    cfg, ws = prepared
    blocks = peft.block_names(load_components(ws.model_dir, text=False).unet, "blocks16")
    renamed = [*blocks[:5], "down_blocks.9.attentions.0.transformer_blocks.0", *blocks[6:]]
    _write(tmp_path / "a" / "mask.json", mask_file("svdiff", "blocks16", [], BITS, renamed, "x"))
    with pytest.raises(UserError, match=r"block_names: .*bit 5: down_blocks\.9") as err:
        mask_file_target(tmp_path / "a", cfg)
    assert str(tmp_path / "a" / "mask.json") in str(err.value)
    _write(tmp_path / "b" / "mask.json", mask_file("svdiff", "blocks16", [], [1] * 13,
                                                   blocks[:13], "x"))
    with pytest.raises(UserError, match="bits: 13 bits, but this model has 16 blocks16 blocks"):
        mask_file_target(tmp_path / "b", cfg)


@pytest.mark.slow
def test_a_searched_mask_retrains_on_another_dataset(prepared, tmp_path):
    """Mask transfer (the paper's section 4.4): a trial's mask from the embedded dataset,
    retrained on an imagefolder dataset with the same model."""
    import subprocess
    import sys

    from memctl import peft
    from memctl.models.load import load_components
    from tests.conftest import SMALL
    from tests.data.conftest import write_imagenette

    cfg, ws = prepared
    blocks = peft.block_names(load_components(ws.model_dir, text=False).unet, "blocks16")
    trial = tmp_path / "trials/memctl/00003"
    _write(trial / "mask.json", mask_file("difffit", "blocks16", [], BITS, blocks,
                                          "study memctl trial 3"))
    images = write_imagenette(tmp_path / "imagenette2", per_class=4)
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "retrain", "--mask", str(trial), "--json", *SMALL,
         f"run_dir={tmp_path / 'transfer'}", "data.source=imagefolder",
         f"data.path={images}", "data.official_split=false", "data.dmem_size=2",
         "data.val_fraction=0.25", "data.test_fraction=0.25",
         "data.caption_template=a photo of a {class}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    record = json.loads((tmp_path / out["out_dir"] / "mask.json").read_text())
    assert record["bits"] == "".join(map(str, BITS)) and record["method"] == "difffit"
    assert record["block_names"] == blocks and "imagefolder" in (
        tmp_path / out["out_dir"] / "config.yaml").read_text()


def test_a_retrain_without_a_test_split_is_refused_before_training(prepared, tmp_path):
    """Imagenette ships train/ and val/ only: its official split has no test images."""
    import subprocess
    import sys

    from memctl import peft
    from memctl.models.load import load_components
    from tests.conftest import SMALL
    from tests.data.conftest import write_imagenette

    _, ws = prepared
    blocks = peft.block_names(load_components(ws.model_dir, text=False).unet, "blocks16")
    _write(tmp_path / "m" / "mask.json", mask_file("difffit", "blocks16", [], BITS, blocks, "x"))
    images = write_imagenette(tmp_path / "imagenette2", per_class=2)
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "retrain", "--mask", str(tmp_path / "m"), *SMALL,
         f"run_dir={tmp_path / 'r'}", "data.source=imagefolder", f"data.path={images}",
         "data.dmem_size=1", "data.caption_template=a photo of a {class}"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "the test split is empty (a retrain scores on it)" in proc.stderr
    assert "data.official_split=false" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "r").glob("retrain/*/metrics.json"))
