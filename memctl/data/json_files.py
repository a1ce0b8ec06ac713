"""Small JSON records of runs and caches: atomic owner-only writes, forgiving reads."""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_json(path: Path) -> dict:
    """A JSON object written by write_json; {} when missing or unreadable (half-written)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def write_json(path: Path, obj: object) -> None:
    """Atomic owner-only JSON write."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
