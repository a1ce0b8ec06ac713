"""The data path through the workspace and CLI: mimic source -> cache -> splits, D_mem files."""

import dataclasses
import functools
import json
import multiprocessing
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from memctl.cli import main
from memctl.errors import UserError
from memctl.workspace import load_records, model_dir, prepare, proxy_set, sidecar
from tests.conftest import small_config
from tests.data.conftest import STUDIES, dicom_id


def mimic_config(run_dir: Path, model: Path, root: Path, **data):
    cfg = small_config(run_dir, data={"source": "mimic", "path": str(root), "dmem_size": 2,
                                      "dmem_repeats": 2, "val_fraction": 0.2,
                                      "test_fraction": 0.2, **data})
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, path=str(model)))


@pytest.fixture(scope="module")
def mimic_ws(tmp_path_factory, tiny_model_dir, mimic_root):
    cfg = mimic_config(tmp_path_factory.mktemp("run"), tiny_model_dir, mimic_root)
    return cfg, prepare(cfg)


def test_splits_written_beside_the_cache(mimic_ws):
    cfg, ws = mimic_ws
    record = json.loads(sidecar(ws.cache_path, "splits").read_text())
    assert record["seed"] == 0 and record["official"] is True
    reader = ws.reader()
    for subject, split in zip(reader.subject_id, reader.split, strict=True):
        assert record["subjects"][subject] == split  # one split per subject, as cached
    assert record["subjects"]["10002428"] == "test" and record["subjects"]["10000032"] == "train"
    assert record["decided_by"]["official"] >= 5 and record["decided_by"]["hash"] == 4
    # Ignoring the official split draws every subject: another cache, other splits.
    drawn = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, official_split=False))
    from memctl.workspace import _cache_path, records

    assert _cache_path(drawn, records(drawn), "fp") != _cache_path(cfg, records(cfg), "fp")


def test_dmem_choice_recorded(mimic_ws):
    cfg, ws = mimic_ws
    proxy = proxy_set(cfg, ws.reader())
    (path,) = ws.cache_path.parent.glob(f"{ws.cache_path.stem}.dmem-*.json")
    record = json.loads(path.read_text())
    assert record["strategy"] == "longest" and record["repeats"] == 2
    assert [d["index"] for d in record["dmem"]] == proxy.dmem_indices
    assert all(ws.reader().split[i] == "train" for i in proxy.dmem_indices)
    assert record["dmem"][0]["tokens"] >= record["dmem"][1]["tokens"]
    assert proxy_set(cfg, ws.reader()) == proxy  # same settings: same set, file unchanged


def test_dmem_from_file(mimic_ws, tmp_path):
    cfg, ws = mimic_ws
    ids = tmp_path / "dmem.txt"
    wanted = [dicom_id(STUDIES[1], "PA"), dicom_id(STUDIES[0], "PA")]
    ids.write_text("\n".join(wanted) + "\n")
    file_cfg = dataclasses.replace(cfg, data=dataclasses.replace(
        cfg.data, dmem_strategy="file", dmem_file=str(ids)))
    proxy = proxy_set(file_cfg, ws.reader())
    assert [Path(p).stem for p in ws.reader().paths(proxy.dmem_indices)] == wanted
    ids.write_text(dicom_id(STUDIES[5], "PA"))  # a test-split image
    with pytest.raises(UserError, match="match no usable training image"):
        proxy_set(file_cfg, ws.reader())


def test_cli_cache_info_lists_skipped(mimic_ws):
    cfg, ws = mimic_ws
    args = ["cache", "info", f"run_dir={cfg.run_dir}", f"model.path={cfg.model.path}",
            "data.source=mimic", f"data.path={cfg.data.path}", "data.val_fraction=0.2",
            "data.test_fraction=0.2"]
    out = CliRunner().invoke(main, args)
    assert out.exit_code == 0, out.output
    assert "missing report: " in out.output and "truncated image: " in out.output
    assert "empty caption" in out.output and "empty image file" in out.output
    info = json.loads(CliRunner().invoke(main, [*args, "--json"]).output)
    assert len(info["skipped"]) == 4


def test_cli_missing_source_exits_2(tmp_path):
    out = CliRunner().invoke(main, ["cache", "build", f"run_dir={tmp_path}", "data.source=mimic",
                                    f"data.path={tmp_path / 'absent'}"])
    assert out.exit_code == 2
    assert "absent: MIMIC-CXR-JPG folder not found" in out.output


def _slow_build(log: Path, write: Callable[..., Path]) -> Callable[..., Path]:
    """`write` that records each call and takes long enough for a second process to arrive."""
    def wrapper(out, *args, **kwargs):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        result = write(out, *args, **kwargs)
        time.sleep(1.5)
        return result

    return wrapper


def _fake_model(out) -> Path:
    """A model directory as save_pretrained writes it: the index first, the weights after."""
    out = Path(out)
    out.mkdir(parents=True)
    (out / "model_index.json").write_text("{}")
    time.sleep(1.5)
    (out / "unet").mkdir()
    (out / "unet" / "weights").write_text("w")
    return out


def _in_two_processes(func: Callable[[], object]) -> list[object]:
    with multiprocessing.get_context("fork").Pool(2) as pool:
        return pool.map(_call, [func, func])


def _call(func: Callable[[], object]) -> object:
    return func()


def _model_weights(cfg) -> bool:
    return (model_dir(cfg) / "unet" / "weights").is_file()


def test_two_processes_build_the_embedded_model_once(tmp_path, monkeypatch):
    """Neither takes the other's half-written directory for a finished model."""
    import memctl.models.tiny

    log = tmp_path / "builds.log"
    monkeypatch.setattr(memctl.models.tiny, "write_tiny_model", _slow_build(log, _fake_model))
    cfg = small_config(tmp_path / "run")
    assert _in_two_processes(functools.partial(_model_weights, cfg)) == [True, True]
    assert len(log.read_text().split()) == 1


def _record_count(cfg) -> int:
    return len(load_records(cfg).records)


def test_two_processes_write_the_builtin_dataset_once(tmp_path, monkeypatch):
    import memctl.data.synth

    log = tmp_path / "builds.log"
    monkeypatch.setattr(memctl.data.synth, "write_synth_dataset",
                        _slow_build(log, memctl.data.synth.write_synth_dataset))
    cfg = small_config(tmp_path / "run", data={"synth_n": 12})
    assert _in_two_processes(functools.partial(_record_count, cfg)) == [12, 12]
    assert len(log.read_text().split()) == 1
