"""Data sources: each turns one on-disk layout into Records plus the items it left out.

    result = load_source("mimic", SourceOptions(path="/data/mimic-cxr-jpg/2.0.0"))
    result.records            # Record(path, caption, subject_id, official split)
    result.skipped            # (path, reason): missing report, empty caption, ...

Each source is one module with `load(opts) -> SourceResult`; SOURCES maps config names to
modules, imported only when used.
"""

from __future__ import annotations

import importlib

from memctl.data.sources._record import Record, SourceOptions, SourceResult
from memctl.data.sources.csvfile import read_csv_manifest
from memctl.errors import UserError

SOURCES: dict[str, str] = {
    "synth": "memctl.data.sources.synth",
    "csv": "memctl.data.sources.csvfile",
    "mimic": "memctl.data.sources.mimic",
    "imagefolder": "memctl.data.sources.imagefolder",
}


def load_source(name: str, opts: SourceOptions) -> SourceResult:
    """Reads source `name`; UserError when it is missing or nothing usable remains."""
    if name not in SOURCES:
        raise UserError(f"data.source: unknown {name!r}; choose from {', '.join(SOURCES)}")
    result: SourceResult = importlib.import_module(SOURCES[name]).load(opts)
    if not result.records:
        reasons = sorted({reason.split(":")[0] for _, reason in result.skipped})
        detail = f" ({len(result.skipped)} skipped: {'; '.join(reasons)})" if reasons else ""
        raise UserError(f"{opts.path or name}: no usable records{detail}")
    return result


__all__ = ["SOURCES", "Record", "SourceOptions", "SourceResult", "load_source",
           "read_csv_manifest"]
