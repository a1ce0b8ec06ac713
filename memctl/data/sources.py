"""Data sources: each turns its on-disk layout into a list of Records."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from memctl.errors import UserError


@dataclass(frozen=True)
class Record:
    path: str
    """Absolute image path."""
    caption: str
    subject_id: str
    split: str = ""
    """Official split (train/validate/test) when the source has one; empty otherwise."""


def read_csv_manifest(manifest: str | Path) -> list[Record]:
    """Reads path, caption[, subject_id, split]; relative paths resolve against the CSV."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise UserError(f"{manifest}: manifest not found")
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        missing = {"path", "caption"} - columns
        if missing:
            raise UserError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        records = []
        for row in reader:
            path = Path(row["path"])
            if not path.is_absolute():
                path = manifest.parent / path
            # Without subject ids every image is its own subject.
            subject = (row.get("subject_id") or "").strip() or f"img:{row['path']}"
            records.append(
                Record(str(path), (row["caption"] or "").strip(), subject,
                       (row.get("split") or "").strip())
            )
    if not records:
        raise UserError(f"{manifest}: no rows")
    return records
