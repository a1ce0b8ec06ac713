"""`mimic` source: the MIMIC-CXR-JPG layout with its free-text reports.

    <path>/mimic-cxr-2.0.0-metadata.csv(.gz)   dicom_id, subject_id, study_id, ViewPosition
    <path>/mimic-cxr-2.0.0-split.csv(.gz)      dicom_id, study_id, subject_id, split
    <path>/files/p10/p10000032/s50414267/<dicom_id>.jpg
    <reports>/files/p10/p10000032/s50414267.txt  (reports root: a folder or mimic-cxr-reports.zip;
                                                   default <path>)

Captions come from each study's report (memctl.data.reports). Reading ~230k reports takes
minutes on shared storage, so the parsed result is kept in the work dir, keyed by the
metadata, split and report locations and the settings that shape it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from memctl.data.reports import report_caption
from memctl.data.sources._record import Record, SourceOptions, SourceResult
from memctl.errors import UserError

log = logging.getLogger(__name__)

METADATA = "mimic-cxr-2.0.0-metadata.csv"
SPLIT = "mimic-cxr-2.0.0-split.csv"
INDEX_VERSION = 1
"""Bump when parsing changes, so kept scan indexes are not reused."""


def find_table(root: Path, name: str) -> Path | None:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_table(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        yield from csv.DictReader(fh)


def study_dir(subject: str, study: str) -> str:
    """files/pXX/pSUBJECT/sSTUDY, relative to the dataset (or reports) root."""
    return f"files/p{subject[:2]}/p{subject}/s{study}"


class Reports:
    """A study's report text from a reports folder or mimic-cxr-reports.zip."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.archive: zipfile.ZipFile | None = None
        if root.is_file() and zipfile.is_zipfile(root):
            self.archive = zipfile.ZipFile(root)
            self.names = {n.split("files/", 1)[-1]: n for n in self.archive.namelist()
                          if n.endswith(".txt")}
        # The folder may be the reports root (holding files/) or files/ itself.
        self.base = root / "files" if (root / "files").is_dir() else root

    @staticmethod
    def _rel(subject: str, study: str) -> str:
        return study_dir(subject, study).removeprefix("files/") + ".txt"

    def where(self, subject: str, study: str) -> str:
        if self.archive is not None:
            return f"{self.root}!files/{self._rel(subject, study)}"
        return str(self.base / self._rel(subject, study))

    def read(self, subject: str, study: str) -> str | None:
        if self.archive is not None:
            name = self.names.get(self._rel(subject, study))
            return None if name is None else self.archive.read(name).decode("utf-8", "replace")
        try:
            return Path(self.where(subject, study)).read_text(errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return None

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def _stat_key(path: Path | None) -> str:
    if path is None:
        return "-"
    st = path.stat()
    return f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"


def _scan(root: Path, reports: Path, views: tuple[str, ...]) -> SourceResult:
    metadata = find_table(root, METADATA)
    if metadata is None:
        raise UserError(f"{root}: {METADATA}(.gz) not found (is data.path the MIMIC-CXR-JPG root?)")
    split_file = find_table(root, SPLIT)
    official = {}
    if split_file is None:
        log.warning("%s: no %s; splits are drawn per subject", root, SPLIT)
    else:
        official = {row["dicom_id"]: row["split"] for row in read_table(split_file)}
    store = Reports(reports)
    wanted = {v.upper() for v in views}
    captions: dict[tuple[str, str], tuple[str, str]] = {}  # (subject, study) -> caption, why
    records, skipped = [], []
    for row in read_table(metadata):
        view = (row.get("ViewPosition") or "").strip().upper()
        if wanted and view not in wanted:
            continue
        subject, study, dicom = row["subject_id"], row["study_id"], row["dicom_id"]
        image = str(root / study_dir(subject, study) / f"{dicom}.jpg")
        key = (subject, study)
        if key not in captions:
            text = store.read(subject, study)
            captions[key] = (("", f"missing report: {store.where(subject, study)}")
                             if text is None else report_caption(text))
        caption, why = captions[key]
        if not caption:
            skipped.append((image, why))
            continue
        records.append(Record(image, caption, subject, official.get(dicom, "")))
    store.close()
    return SourceResult(records, skipped)


def load(opts: SourceOptions) -> SourceResult:
    if not opts.path:
        raise UserError("data.path: required when source is mimic (the MIMIC-CXR-JPG root)")
    root = Path(opts.path)
    if not root.is_dir():
        raise UserError(f"{root}: MIMIC-CXR-JPG folder not found (data.path)")
    reports = Path(opts.reports_path) if opts.reports_path else root
    if not reports.exists():
        raise UserError(f"{reports}: reports folder or zip not found (data.reports_path)")
    views = tuple(opts.views)
    key = "|".join([str(INDEX_VERSION), _stat_key(find_table(root, METADATA)),
                    _stat_key(find_table(root, SPLIT)), _stat_key(reports), ",".join(views)])
    index = (Path(opts.work_dir) / f"mimic-index-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
             ".json.gz") if opts.work_dir else None
    if index is not None and index.is_file():
        with gzip.open(index, "rt") as fh:
            data = json.load(fh)
        return SourceResult([Record(*r) for r in data["records"]],
                            [tuple(s) for s in data["skipped"]])
    result = _scan(root, reports, views)
    if index is not None:
        index.parent.mkdir(parents=True, exist_ok=True)
        tmp = index.with_name(f"{index.name}.{os.getpid()}.tmp")
        payload = {"records": [[r.path, r.caption, r.subject_id, r.split] for r in result.records],
                   "skipped": [list(s) for s in result.skipped]}
        with gzip.open(tmp, "wt") as fh:
            json.dump(payload, fh)
        os.chmod(tmp, 0o600)  # report text is patient data
        os.replace(tmp, index)
    return result

