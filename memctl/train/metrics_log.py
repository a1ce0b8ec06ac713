"""metrics.jsonl: one JSON line per logged step, owner-only, kept consistent over resumes."""

from __future__ import annotations

import json
import os
from pathlib import Path


class MetricsLog:
    """Appends records; on resume drops lines of steps the checkpoint did not reach."""

    def __init__(self, path: Path | None, resume_step: int = 0) -> None:
        self.file = None
        if path is None:
            return
        kept = []
        if resume_step and path.exists():
            for line in path.read_text().splitlines():
                try:
                    if json.loads(line)["step"] < resume_step:
                        kept.append(line + "\n")
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a kill
        self.file = open(path, "w")  # noqa: SIM115 - closed in close()
        os.chmod(path, 0o600)
        self.file.writelines(kept)
        self.file.flush()

    def write(self, record: dict) -> None:
        if self.file:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.file.close()
            self.file = None
