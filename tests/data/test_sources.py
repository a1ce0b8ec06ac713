import json
import zipfile
from pathlib import Path

import pytest

from memctl.data.sources import SOURCES, SourceOptions, load_source
from memctl.data.sources.imagefolder import read_class_names
from memctl.errors import UserError
from tests.data.conftest import LONG, STUDIES, dicom_id, write_image, write_mimic


def by_stem(records):
    return {Path(r.path).stem: r for r in records}


def test_registry_names_match_the_config_choices():
    from memctl.config import DataConfig

    assert set(SOURCES) == {"synth", "csv", "mimic", "imagefolder"}
    for name in SOURCES:
        DataConfig(source=name, path="x")


def test_mimic_frontal_views_captions_and_official_split(mimic_root):
    res = load_source("mimic", SourceOptions(path=str(mimic_root)))
    recs = by_stem(res.records)
    frontal = {dicom_id(st, v) for st in STUDIES for v in st.views if v in ("PA", "AP")}
    assert set(recs) | {Path(p).stem for p, _ in res.skipped} == frontal  # no laterals
    first, second, third = STUDIES[:3]
    assert recs[dicom_id(first, "PA")].caption == "No acute cardiopulmonary process."
    assert recs[dicom_id(second, "PA")].caption == "Small left effusion."  # FINDINGS fallback
    assert recs[dicom_id(third, "AP")].caption == "Compared to, no change. Small effusion."
    assert recs[dicom_id(STUDIES[5], "PA")].caption == LONG
    assert recs[dicom_id(first, "PA")].subject_id == "10000032"
    assert recs[dicom_id(first, "PA")].split == "train"
    assert recs[dicom_id(STUDIES[5], "PA")].split == "test"
    assert recs[dicom_id(STUDIES[8], "PA")].split == ""  # not in the split file
    # Broken images are the cache's business: the source lists them.
    assert recs[dicom_id(STUDIES[6], "PA")].path.endswith(".jpg")
    reasons = {Path(p).stem: r for p, r in res.skipped}
    assert reasons[dicom_id(STUDIES[3], "PA")].startswith("missing report: ")
    assert reasons[dicom_id(STUDIES[3], "PA")].endswith("s58913004.txt")
    assert reasons[dicom_id(STUDIES[4], "PA")].startswith("empty caption")


def test_mimic_views_configurable(mimic_root):
    every = load_source("mimic", SourceOptions(path=str(mimic_root), views=()))
    lateral = load_source("mimic", SourceOptions(path=str(mimic_root), views=("lateral",)))
    frontal = load_source("mimic", SourceOptions(path=str(mimic_root)))
    assert len(every.records) == len(frontal.records) + len(lateral.records)
    assert all(Path(r.path).stem.endswith("-lateral") for r in lateral.records)


def test_mimic_reports_from_zip_and_separate_root(tmp_path):
    root = write_mimic(tmp_path / "jpg", reports_root=tmp_path / "reports")
    with pytest.raises(UserError, match="no usable records"):  # reports not beside images
        load_source("mimic", SourceOptions(path=str(root)))
    in_dir = load_source("mimic", SourceOptions(path=str(root),
                                                reports_path=str(tmp_path / "reports")))
    archive = tmp_path / "mimic-cxr-reports.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for txt in (tmp_path / "reports").rglob("*.txt"):
            zf.write(txt, txt.relative_to(tmp_path / "reports").as_posix())
    in_zip = load_source("mimic", SourceOptions(path=str(root), reports_path=str(archive)))
    assert in_zip.records == in_dir.records
    missing = [r for _, r in in_zip.skipped if r.startswith("missing")]
    assert missing and missing[0].startswith(f"missing report: {archive}!files/p10/")


def test_mimic_scan_is_kept_and_reused(mimic_root, tmp_path):
    opts = SourceOptions(path=str(mimic_root), work_dir=str(tmp_path))
    first = load_source("mimic", opts)
    (index,) = tmp_path.glob("mimic-index-*.json.gz")
    assert oct(index.stat().st_mode & 0o777) == "0o600"
    again = load_source("mimic", opts)
    assert again.records == first.records and again.skipped == first.skipped
    other = load_source("mimic", SourceOptions(path=str(mimic_root), work_dir=str(tmp_path),
                                               views=("PA",)))
    assert len(list(tmp_path.glob("mimic-index-*.json.gz"))) == 2
    assert len(other.records) < len(first.records)


def test_mimic_missing_pieces_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_source("mimic", SourceOptions(path=str(tmp_path / "nope")))
    with pytest.raises(UserError, match="metadata.csv"):
        load_source("mimic", SourceOptions(path=str(tmp_path)))


def test_imagefolder_split_folders_and_class_names(imagenette_root, tmp_path):
    mapping = tmp_path / "LOC_synset_mapping.txt"
    mapping.write_text("n01440764 tench, Tinca tinca\nn02102040 English springer, English "
                       "spaniel\n")
    res = load_source("imagefolder", SourceOptions(path=str(imagenette_root),
                                                   class_names=str(mapping)))
    assert len(res.records) == 2 * 3 * 3 + 1  # + the zero-byte PNG, which the cache skips
    captions = {r.caption for r in res.records}
    assert captions == {"a photo of a tench", "a photo of a English springer",
                        "a photo of a n03028079"}  # unmapped: folder name
    assert {r.split for r in res.records} == {"train", "validate"}
    assert all(r.subject_id.startswith("img:") for r in res.records)
    templ = load_source("imagefolder", SourceOptions(path=str(imagenette_root / "train"),
                                                     caption_template="{class} photo"))
    assert {r.split for r in templ.records} == {""}
    assert "n01440764 photo" in {r.caption for r in templ.records}


@pytest.mark.parametrize("suffix", [".json", ".csv", ".txt", "-index.json"])
def test_class_name_files(tmp_path, suffix):
    path = tmp_path / f"names{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"n01440764": "tench", "n03028079": "church, building"}))
    elif suffix == "-index.json":  # imagenet_class_index.json
        path.write_text(json.dumps({"0": ["n01440764", "tench"], "1": ["n03028079", "church"]}))
    elif suffix == ".csv":
        path.write_text("wnid,name\nn01440764,tench\nn03028079,\"church, building\"\n")
    else:
        path.write_text("n01440764: tench\nn03028079\tchurch_building\n")
    names = read_class_names(path)
    assert names["n01440764"] == "tench"
    assert names["n03028079"] in ("church", "church building")


def test_csv_skips_empty_captions(tmp_path):
    write_image(tmp_path / "a.png", 0)
    write_image(tmp_path / "b.png", 1)
    (tmp_path / "m.csv").write_text('path,caption,subject_id\na.png," small\n effusion ",s1\n'
                                    "b.png,,s2\n")
    res = load_source("csv", SourceOptions(path=str(tmp_path / "m.csv")))
    assert [r.caption for r in res.records] == ["small effusion"]
    assert res.skipped == [(str(tmp_path / "b.png"), "empty caption")]


def test_synth_source_writes_once(tmp_path):
    res = load_source("synth", SourceOptions(synth_n=6, work_dir=str(tmp_path)))
    assert len(res.records) == 6 and (tmp_path / "synth" / "manifest.csv").is_file()
    assert load_source("synth", SourceOptions(synth_n=6, work_dir=str(tmp_path))) == res
