"""Small trees in each source's on-disk layout, with the broken files real data holds."""

from __future__ import annotations

import csv
import gzip
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from memctl.data.sources.mimic import METADATA, SPLIT, study_dir


def write_image(path: Path, seed: int, size: tuple[int, int] = (80, 96),
                fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    Image.fromarray(arr, "L").save(path, format=fmt)
    return path


def truncate(path: Path) -> Path:
    """Cuts an image file to half its bytes, as an interrupted copy leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def report(findings: str | None, impression: str | None) -> str:
    text = (" FINAL REPORT\n EXAMINATION:  CHEST (PA AND LAT)\n\n"
            " INDICATION:  ___F with cough  // eval\n\n COMPARISON:  ___.\n\n")
    if findings is not None:
        text += f" FINDINGS:\n \n {findings}\n\n"
    if impression is not None:
        text += f" IMPRESSION:\n \n {impression}\n"
    return text


LONG = ("Interval increase in moderate bilateral pleural effusions with adjacent compressive "
        "atelectasis, new right lower lobe opacity concerning for pneumonia, stable mild "
        "cardiomegaly, and a right internal jugular catheter terminating in the mid svc. "
        "Endotracheal tube terminates above the carina; no pneumothorax is seen on the frontal "
        "and lateral views compared to the prior exam.")


@dataclass
class Study:
    subject: str
    study: str
    report: str | None  # None: the report file is missing
    split: str = "train"
    views: tuple[str, ...] = ("PA", "LATERAL")
    broken: dict[str, str] = field(default_factory=dict)  # view -> "truncated" | "empty"


STUDIES = [
    Study("10000032", "50414267", report("Clear lungs.", "No acute cardiopulmonary process.")),
    Study("10000032", "53189527", report("Small left effusion.", None)),  # FINDINGS fallback
    Study("10000764", "57375967", report(None, "Compared to ___, no change.  Small ___ effusion."),
          views=("AP",)),
    Study("10001217", "58913004", None, split="validate"),  # missing report
    Study("10001217", "52067803", report(None, "  ___  "), split="validate"),  # empty caption
    Study("10002428", "59659695", report(None, LONG), split="test"),
    Study("10003400", "56338146", report("Low lung volumes.", "No acute process."),
          broken={"PA": "truncated"}),
    Study("10004235", "54785549", report(None, "Mild cardiomegaly."), broken={"AP": "empty"},
          views=("PA", "AP")),
    Study("10005001", "50000001", report(None, "No acute cardiopulmonary process."), split=""),
    Study("10005002", "50000002", report(None, "No acute cardiopulmonary process."), split=""),
    Study("10005003", "50000003", report(None, "Stable right pleural effusion."), split=""),
    Study("10005004", "50000004", report(None, "No pneumothorax."), split=""),
]


def dicom_id(study: Study, view: str) -> str:
    return f"{study.study}-{view.replace(' ', '').lower()}"


def _write_csv(path: Path, rows: list[dict], gz: bool) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    if gz:
        with gzip.open(path.with_name(path.name + ".gz"), "wt") as fh:
            fh.write(buf.getvalue())
    else:
        path.write_text(buf.getvalue())


def write_mimic(root: Path, reports_root: Path | None = None) -> Path:
    """MIMIC-CXR-JPG layout: gzipped metadata, plain split file, reports beside the images."""
    reports_root = reports_root or root
    meta, split = [], []
    for k, st in enumerate(STUDIES):
        folder = root / study_dir(st.subject, st.study)
        for j, view in enumerate(st.views):
            dicom = dicom_id(st, view)
            image = write_image(folder / f"{dicom}.jpg", seed=100 * k + j, fmt="JPEG")
            if st.broken.get(view) == "truncated":
                truncate(image)
            elif st.broken.get(view) == "empty":
                image.write_bytes(b"")
            meta.append({"dicom_id": dicom, "subject_id": st.subject, "study_id": st.study,
                         "PerformedProcedureStepDescription": "CHEST (PA AND LAT)",
                         "ViewPosition": view, "Rows": 96, "Columns": 80})
            if st.split:
                split.append({"dicom_id": dicom, "study_id": st.study, "subject_id": st.subject,
                              "split": st.split})
        if st.report is not None:
            txt = reports_root / (study_dir(st.subject, st.study) + ".txt")
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(st.report)
    _write_csv(root / METADATA, meta, gz=True)
    _write_csv(root / SPLIT, split, gz=False)
    return root


@pytest.fixture(scope="session")
def mimic_root(tmp_path_factory) -> Path:
    return write_mimic(tmp_path_factory.mktemp("mimic") / "mimic-cxr-jpg" / "2.0.0")


WNIDS = {"n01440764": "tench, Tinca tinca", "n02102040": "English springer, English spaniel",
         "n03028079": "church, church building"}


def write_imagenette(root: Path, per_class: int = 3) -> Path:
    """Imagenette layout: train/ and val/ split folders, WordNet-id class folders."""
    seed = 0
    for split in ("train", "val"):
        for wnid in WNIDS:
            for i in range(per_class):
                seed += 1
                write_image(root / split / wnid / f"{wnid}_{i}.JPEG", seed, fmt="JPEG")
    (root / "train" / "n01440764" / "notes.txt").write_text("not an image")
    (root / "train" / "n03028079" / "empty.png").write_bytes(b"")  # zero-byte PNG
    return root


@pytest.fixture(scope="session")
def imagenette_root(tmp_path_factory) -> Path:
    return write_imagenette(tmp_path_factory.mktemp("imagenette") / "imagenette2")


@pytest.fixture(scope="session")
def encoders(tiny_model_dir):
    from memctl.data.cache_build import Encoders
    from memctl.models.load import load_components

    comps = load_components(tiny_model_dir)
    return Encoders(comps.vae, comps.tokenizer, comps.text_encoder)
