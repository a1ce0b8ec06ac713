"""`csv` source: a manifest with path, caption[, subject_id, split] columns."""

from __future__ import annotations

import csv
from pathlib import Path

from memctl.data.sources._record import Record, SourceOptions, SourceResult
from memctl.errors import UserError


def read_manifest(manifest: str | Path) -> SourceResult:
    """Relative paths resolve against the CSV; rows with an empty caption are skipped."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise UserError(f"{manifest}: manifest not found")
    records, skipped = [], []
    with open(manifest, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        missing = {"path", "caption"} - columns
        if missing:
            raise UserError(f"{manifest}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            path = Path(row["path"] or "")
            if not path.is_absolute():
                path = manifest.parent / path
            caption = " ".join((row["caption"] or "").split())
            if not caption:
                skipped.append((str(path), "empty caption"))
                continue
            # Without subject ids every image is its own subject.
            subject = (row.get("subject_id") or "").strip() or f"img:{row['path']}"
            records.append(Record(str(path), caption, subject, (row.get("split") or "").strip()))
    if not records and not skipped:
        raise UserError(f"{manifest}: no rows")
    return SourceResult(records, skipped)


def read_csv_manifest(manifest: str | Path) -> list[Record]:
    """The usable records of a manifest (see read_manifest)."""
    return read_manifest(manifest).records


def load(opts: SourceOptions) -> SourceResult:
    if not opts.path:
        raise UserError("data.path: required when source is csv (the manifest)")
    return read_manifest(opts.path)
