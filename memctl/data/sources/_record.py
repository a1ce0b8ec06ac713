"""What every source returns: records to cache and the files it had to leave out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Record:
    path: str
    """Absolute image path."""
    caption: str
    subject_id: str
    split: str = ""
    """Official split (train/validate/test) when the source has one; empty otherwise."""


@dataclass(frozen=True)
class SourceOptions:
    """The data settings a source may use (the config's `data` section, minus the schema)."""

    path: str = ""
    reports_path: str = ""
    views: tuple[str, ...] = ("PA", "AP")
    caption_template: str = "a photo of a {class}"
    class_names: str = ""
    synth_n: int = 240
    seed: int = 0
    work_dir: str = ""
    """Where a source may write: the generated synth dataset, scan indexes (owner-only)."""


@dataclass
class SourceResult:
    records: list[Record]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(path, reason) of items left out before caching: missing report, empty caption, ..."""
