"""`imagefolder` source: one folder per class, captions from a template.

    <path>/<class>/*.jpg                    every image its own subject, splits drawn
    <path>/{train,val,test}/<class>/*.jpg   split folders are the official split (Imagenette)

Caption: `caption_template` with {class} replaced by the class name, which comes from the
`class_names` mapping file when given (e.g. n01440764 -> tench), else the folder name.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

from memctl.data.sources._record import Record, SourceOptions, SourceResult
from memctl.errors import UserError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
SPLIT_DIRS = {"train": "train", "val": "validate", "validation": "validate", "valid": "validate",
              "test": "test"}


def _clean(name: str) -> str:
    """First synonym, underscores as spaces: "tench, Tinca tinca" -> "tench"."""
    return " ".join(name.split(",")[0].replace("_", " ").split())


def read_class_names(path: str | Path) -> dict[str, str]:
    """Folder name -> class name from JSON, CSV/TSV or text ("id name[, synonyms]" lines).

    JSON may map id -> name, or index -> [id, name] (imagenet_class_index.json).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: class names file not found (data.class_names)")
    text = path.read_text()
    mapping: dict[str, str] = {}
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
            if not isinstance(data, dict):
                raise ValueError("expected a JSON object")
            for key, value in data.items():
                if isinstance(value, list) and len(value) == 2:
                    key, value = value
                mapping[str(key)] = _clean(str(value))
        elif path.suffix.lower() in (".csv", ".tsv"):
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            for row in csv.reader(text.splitlines(), delimiter=delimiter):
                if len(row) >= 2:
                    mapping[row[0].strip()] = _clean(",".join(row[1:]))
        else:
            for line in text.splitlines():
                parts = line.replace(":", " ", 1).replace("\t", " ").split(None, 1)
                if len(parts) == 2:
                    mapping[parts[0]] = _clean(parts[1])
    except (ValueError, TypeError) as err:
        raise UserError(f"{path}: cannot read class names: {err}") from None
    return {k: v for k, v in mapping.items() if v}


def _class_images(folder: Path) -> list[tuple[str, Path]]:
    return [(d.name, f) for d in sorted(p for p in folder.iterdir() if p.is_dir())
            for f in sorted(d.rglob("*")) if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]


def load(opts: SourceOptions) -> SourceResult:
    if not opts.path:
        raise UserError("data.path: required when source is imagefolder")
    root = Path(opts.path)
    if not root.is_dir():
        raise UserError(f"{root}: image folder not found (data.path)")
    names = read_class_names(opts.class_names) if opts.class_names else {}
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    if subdirs and all(p.name.lower() in SPLIT_DIRS for p in subdirs):
        groups = [(SPLIT_DIRS[p.name.lower()], p) for p in sorted(subdirs)]
    else:
        groups = [("", root)]
    records, unnamed = [], set()
    for split, folder in groups:
        for cls, image in _class_images(folder):
            if names and cls not in names:
                unnamed.add(cls)
            caption = opts.caption_template.format(**{"class": names.get(cls, cls)})
            rel = image.relative_to(root).as_posix()
            records.append(Record(str(image), caption, f"img:{rel}", split))
    if unnamed:
        log.warning("%s: %d class folder(s) not in %s, named by folder: %s", root, len(unnamed),
                    opts.class_names, ", ".join(sorted(unnamed)[:5]))
    return SourceResult(records)
