"""The built-in dataset: synthetic chest-X-ray-like images with report-style captions.

Mimics what matters in MIMIC-CXR for memorisation studies: grayscale frontal radiographs,
several images per subject, captions built from findings, and many images sharing a caption
(normal studies). Seeded: the same (n, seed) writes byte-identical files.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from memctl.data.vocabulary import FINDING_SENTENCES, NORMAL

IMAGE_SIZE = 128
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class SynthCase:
    subject_id: str
    findings: dict[str, str]  # finding -> side
    caption: str


def _draw(case: SynthCase, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    s = size
    img = Image.new("L", (s, s), color=int(rng.integers(20, 45)))
    d = ImageDraw.Draw(img)
    # Thorax, then the two dark lung fields, then the heart shadow overlapping the left lung.
    d.ellipse([s * 0.08, s * 0.1, s * 0.92, s * 1.05], fill=int(rng.integers(150, 180)))
    lung = int(rng.integers(50, 80))
    jitter = lambda: float(rng.uniform(-0.02, 0.02)) * s  # noqa: E731
    d.ellipse([s * 0.16 + jitter(), s * 0.18, s * 0.47, s * 0.85 + jitter()], fill=lung)
    d.ellipse([s * 0.53, s * 0.18, s * 0.84 + jitter(), s * 0.85 + jitter()], fill=lung)
    heart = 0.2 if "cardiomegaly" in case.findings else 0.13
    cx, cy = s * 0.56, s * 0.66
    d.ellipse([cx - heart * s, cy - 0.12 * s, cx + heart * s, cy + 0.12 * s], fill=175)
    d.rectangle([s * 0.47, s * 0.05, s * 0.53, s * 0.6], fill=185)  # spine / mediastinum
    for finding, side in case.findings.items():
        x0 = 0.2 if side == "right" else 0.57  # patient's right is image left
        if finding == "opacity":
            x, y = s * (x0 + rng.uniform(0, 0.15)), s * rng.uniform(0.55, 0.72)
            r = s * rng.uniform(0.06, 0.1)
            d.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(120, 150)))
        elif finding == "effusion":
            d.rectangle([s * x0 - 4, s * rng.uniform(0.7, 0.78), s * (x0 + 0.27), s * 0.86], 165)
        elif finding == "nodule":
            x, y, r = s * (x0 + rng.uniform(0.05, 0.2)), s * rng.uniform(0.25, 0.4), s * 0.025
            d.ellipse([x - r, y - r, x + r, y + r], fill=200)
        elif finding == "device":
            pts = [(s * 0.35, s * 0.02), (s * 0.42, s * 0.2), (s * 0.5, s * rng.uniform(0.3, 0.4))]
            d.line(pts, fill=240, width=2)
    # Laterality marker at a random corner, as burned into real radiographs.
    mx, my = rng.choice([0.04, 0.84]) * s, rng.choice([0.04, 0.88]) * s
    d.text((mx, my), str(rng.choice(["L", "R", "AP"])), fill=250)
    img = img.filter(ImageFilter.GaussianBlur(radius=1.2))
    noise = rng.normal(0, 6, (s, s))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype("u1"))


def _caption(findings: dict[str, str], rng: np.random.Generator) -> str:
    if not findings:
        return NORMAL
    parts = []
    for finding, side in findings.items():
        options = FINDING_SENTENCES[finding]
        parts.append(options[int(rng.integers(len(options)))].format(side=side))
    text = " ".join(parts)
    return text[0].upper() + text[1:]


def synth_cases(n: int, seed: int = 0) -> list[SynthCase]:
    rng = np.random.default_rng(seed)
    n_subjects = max(1, n // 3)
    cases = []
    for i in range(n):
        subject = f"s{int(rng.integers(n_subjects)):05d}"
        findings: dict[str, str] = {}
        if rng.random() > 0.4:  # ~40% normal studies share one caption
            k = int(rng.integers(1, 3))
            for f in rng.choice(list(FINDING_SENTENCES), size=k, replace=False):
                findings[str(f)] = str(rng.choice(["left", "right"]))
        cases.append(SynthCase(subject, findings, _caption(findings, rng)))
        del i
    return cases


def write_synth_dataset(out_dir: str | Path, n: int = 240, seed: int = 0) -> Path:
    """Writes n PNGs and manifest.csv (path, caption, subject_id); returns the manifest path."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    rng = np.random.default_rng(seed + 1)
    rows = []
    for i, case in enumerate(synth_cases(n, seed)):
        rel = f"images/{i:06d}.png"
        _draw(case, rng).save(out / rel, optimize=False)
        rows.append({"path": rel, "caption": case.caption, "subject_id": case.subject_id})
    manifest = out / MANIFEST
    tmp = manifest.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["path", "caption", "subject_id"])
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, manifest)
    return manifest
