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

from memctl.data.vocabulary import (
    COMPARISONS,
    FINDING_SENTENCES,
    MILLIMETRES,
    NORMAL,
    SIZES,
    VIEWS,
    ZONES,
)

IMAGE_SIZE = 64
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class SynthCase:
    subject_id: str
    findings: dict[str, str]  # finding -> side
    caption: str


def _low_frequency(rng: np.random.Generator, s: int, cells: int, amplitude: float) -> np.ndarray:
    """A smooth random field: each image's own soft-tissue and exposure pattern."""
    coarse = rng.normal(0, 1, (cells, cells)).astype(np.float32)
    field = Image.fromarray(coarse).resize((s, s), Image.Resampling.BICUBIC)
    return amplitude * np.asarray(field, dtype=np.float64)


def _draw(case: SynthCase, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Image.Image:
    # Each image varies in anatomy (lung, heart, rib layout), exposure and its own smooth
    # texture, so no two distinct images are near-duplicates under the extraction attack's
    # tiled distance: a generation close to a training image has replayed that image.
    s = size
    img = Image.new("L", (s, s), color=int(rng.integers(10, 60)))
    d = ImageDraw.Draw(img)
    j = lambda a=0.04: float(rng.uniform(-a, a)) * s  # noqa: E731
    thorax = int(rng.integers(140, 190))
    d.ellipse([s * 0.06 + j(), s * 0.08 + j(), s * 0.94 + j(), s * 1.08], fill=thorax)
    lung = int(rng.integers(40, 90))
    d.ellipse([s * 0.14 + j(), s * 0.16 + j(), s * 0.47 + j(), s * 0.86 + j(0.06)], fill=lung)
    d.ellipse([s * 0.53 + j(), s * 0.16 + j(), s * 0.86 + j(), s * 0.86 + j(0.06)], fill=lung)
    # Ribs: bright arcs with a per-image spacing and tilt.
    gap, tilt = rng.uniform(0.07, 0.11) * s, rng.uniform(0.02, 0.1) * s
    rib = int(rng.integers(95, 135))
    y = s * rng.uniform(0.16, 0.22)
    while y < s * 0.82:
        for x0, x1, sign in ((0.12, 0.48, 1), (0.52, 0.88, -1)):
            d.line([(s * x0, y + sign * tilt), (s * x1, y - sign * tilt)], fill=rib, width=1)
        y += gap
    heart = (0.21 if "cardiomegaly" in case.findings else 0.13) + rng.uniform(-0.02, 0.02)
    cx, cy = s * (0.56 + rng.uniform(-0.04, 0.04)), s * (0.66 + rng.uniform(-0.04, 0.04))
    d.ellipse([cx - heart * s, cy - 0.12 * s, cx + heart * s, cy + 0.12 * s],
              fill=int(rng.integers(160, 195)))
    d.rectangle([s * 0.47 + j(0.015), s * 0.04, s * 0.53 + j(0.015), s * 0.6], fill=185)
    for finding, side in case.findings.items():
        x0 = 0.2 if side == "right" else 0.57  # patient's right is image left
        if finding == "opacity":
            x, y = s * (x0 + rng.uniform(0, 0.15)), s * rng.uniform(0.35, 0.72)
            r = s * rng.uniform(0.06, 0.12)
            d.ellipse([x - r, y - r, x + r, y + r], fill=int(rng.integers(115, 155)))
        elif finding == "effusion":
            top = s * rng.uniform(0.66, 0.78)
            d.rectangle([s * (x0 - 0.05), top, s * (x0 + 0.27), s * 0.86],
                        int(rng.integers(150, 180)))
        elif finding == "nodule":
            x, y = s * (x0 + rng.uniform(0.05, 0.2)), s * rng.uniform(0.25, 0.5)
            r = s * rng.uniform(0.025, 0.045)
            d.ellipse([x - r, y - r, x + r, y + r], fill=205)
        elif finding == "device":
            pts = [(s * rng.uniform(0.3, 0.4), s * 0.02), (s * 0.42, s * 0.2),
                   (s * 0.5, s * rng.uniform(0.3, 0.45))]
            d.line(pts, fill=240, width=2)
    # Laterality marker at a random corner, as burned into real radiographs.
    mx, my = rng.choice([0.04, 0.84]) * s, rng.choice([0.04, 0.86]) * s
    d.text((mx, my), str(rng.choice(["L", "R", "AP"])), fill=250)
    img = img.filter(ImageFilter.GaussianBlur(radius=1.4))
    pixels = np.asarray(img, dtype=np.float64) * rng.uniform(0.8, 1.2)  # exposure
    pixels += _low_frequency(rng, s, 5, 26.0) + rng.normal(0, 1.5, (s, s))
    return Image.fromarray(np.clip(pixels, 0, 255).astype("u1"))


def _caption(findings: dict[str, str], rng: np.random.Generator) -> str:
    pick = lambda options: str(options[int(rng.integers(len(options)))])  # noqa: E731
    if not findings:
        body = NORMAL
    else:
        parts = []
        for finding, side in findings.items():
            text = pick(FINDING_SENTENCES[finding]).format(
                side=side, size=pick(SIZES), zone=pick(ZONES), mm=pick(MILLIMETRES))
            parts.append(text[0].upper() + text[1:])
        body = " ".join(parts)
    if not findings and rng.random() < 0.5:
        return body  # normal studies often share one caption, as in MIMIC-CXR
    return " ".join(p for p in (pick(VIEWS), body, pick(COMPARISONS)) if p)


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
