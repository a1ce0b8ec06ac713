"""`synth` source: the built-in dataset, written on first use then read as a manifest."""

from __future__ import annotations

import os
from pathlib import Path

from memctl.data.sources._record import SourceOptions, SourceResult
from memctl.data.sources.csvfile import read_manifest


def load(opts: SourceOptions) -> SourceResult:
    from memctl.data.synth import MANIFEST, write_synth_dataset

    folder = Path(opts.path) if opts.path else Path(opts.work_dir or ".") / "synth"
    manifest = folder / MANIFEST
    if not manifest.exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        if not opts.path:  # our own work dir: owner-only, like the rest of run_dir
            os.chmod(folder.parent, 0o700)
        write_synth_dataset(folder, n=opts.synth_n, seed=opts.seed)
    return read_manifest(manifest)
