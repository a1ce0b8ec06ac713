"""Nearest-training-image panels (the paper's Figures 1 and 4): for each evaluated model, the
attack's generations beside the training image closest to them. They show training data, so
`memctl report` adds them only with --include-images."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np

from memctl.report.compare import EvaluationRow

NEAREST_FILE = "nearest.npz"
"""Written by `memctl evaluate` beside evaluation.json (memctl.runs.evaluate.NEAREST_FILE;
not imported from there, which would load torch for every report)."""


def _png(pixels: np.ndarray) -> str:
    from PIL import Image

    img = pixels[..., 0] if pixels.ndim == 3 and pixels.shape[-1] == 1 else pixels
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def run_folder(run_dir: Path, row: EvaluationRow) -> Path:
    return run_dir / ("retrain" if row.kind == "retrain" else "baselines") / row.name


def nearest_panels(run_dir: Path, rows: list[EvaluationRow]) -> list[dict]:
    """One entry per evaluated model that kept its nearest pairs: model name and pairs of
    base64 PNGs (generated, training) with the training row, their l2 and extracted flag."""
    panels = []
    for row in rows:
        if row.same_as:
            continue  # the same pictures as the run it equals
        path = run_folder(run_dir, row) / NEAREST_FILE
        try:
            with np.load(path) as data:
                pairs = [{"generated": _png(g), "train": _png(t), "row": int(r),
                          "l2": float(d), "extracted": bool(e)}
                         for g, t, r, d, e in zip(data["generated"], data["train"],
                                                  data["rows"], data["l2"], data["extracted"],
                                                  strict=True)]
        except (OSError, KeyError, ValueError):
            continue  # evaluated before pairs were kept, or a half-written file
        panels.append({"model": row.name, "pairs": pairs})
    return panels
