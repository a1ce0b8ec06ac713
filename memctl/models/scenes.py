"""General-domain pretraining images for the embedded model: procedural coloured scenes.

Shapes of named colours on plain, gradient, striped or textured backgrounds, a quarter of them
in black and white, each with a caption naming what is where. Nothing here looks like a
radiograph, so fine-tuning the embedded model on the built-in chest-X-ray data is a real
domain shift. Seeded: the same (n, size, seed) gives identical arrays.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from memctl.data.vocabulary import COLOURS, PLACES, SHAPES

RGB = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 70, 210),
    "yellow": (235, 220, 50), "purple": (140, 50, 170), "orange": (245, 140, 30),
    "white": (245, 245, 245), "black": (15, 15, 15), "gray": (128, 128, 128),
    "pink": (240, 150, 190), "brown": (120, 75, 35), "cyan": (50, 210, 220),
}
CENTRES = {"left": (0.28, 0.5), "right": (0.72, 0.5), "top": (0.5, 0.28),
           "bottom": (0.5, 0.72), "center": (0.5, 0.5)}
SUPERSAMPLE = 4  # draw large, then downsample: anti-aliased edges


def _background(kind: str, colour: np.ndarray, rng: np.random.Generator, s: int) -> np.ndarray:
    yy, xx = np.mgrid[0:s, 0:s] / s
    base = np.broadcast_to(colour, (s, s, 3)).astype(np.float64)
    if kind == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
        return base * (0.55 + 0.6 * (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6))
    if kind == "striped":
        period = rng.uniform(0.1, 0.3)
        stripes = (np.sin(2 * np.pi * (xx if rng.random() < 0.5 else yy) / period) > 0)
        return base * (0.7 + 0.3 * stripes[..., None])
    if kind == "textured":
        coarse = rng.normal(0, 1, (6, 6))
        field = np.asarray(Image.fromarray(coarse.astype(np.float32)).resize(
            (s, s), Image.Resampling.BICUBIC))
        return base * (1 + 0.18 * field[..., None])
    return base


def _shape(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float,
           fill: tuple[int, int, int], angle: float) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, int(r / 3)))
    elif shape == "square":
        draw.regular_polygon((cx, cy, r), 4, rotation=angle, fill=fill)
    elif shape == "triangle":
        draw.regular_polygon((cx, cy, r), 3, rotation=angle, fill=fill)
    elif shape == "cross":
        w = r / 3
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:  # bar
        draw.rectangle([cx - r, cy - r / 3, cx + r, cy + r / 3], fill=fill)


def scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, str]:
    """One scene: (H, W, 3) uint8 and its caption."""
    s = size * SUPERSAMPLE
    bg_name = str(rng.choice(COLOURS))
    bg_kind = str(rng.choice(["plain", "gradient", "striped", "textured"]))
    pixels = _background(bg_kind, np.array(RGB[bg_name], dtype=np.float64), rng, s)
    img = Image.fromarray(np.clip(pixels, 0, 255).astype("u1"))
    draw = ImageDraw.Draw(img)
    places = list(rng.choice(PLACES, size=int(rng.integers(1, 3)), replace=False))
    parts = []
    for place in places:
        colour = str(rng.choice([c for c in COLOURS if c != bg_name]))
        shape, large = str(rng.choice(SHAPES)), bool(rng.random() < 0.5)
        cx, cy = CENTRES[str(place)]
        cx, cy = (cx + rng.uniform(-0.06, 0.06)) * s, (cy + rng.uniform(-0.06, 0.06)) * s
        r = s * (rng.uniform(0.17, 0.24) if large else rng.uniform(0.08, 0.13))
        shade = np.clip(np.array(RGB[colour]) * rng.uniform(0.8, 1.15), 0, 255)
        _shape(draw, shape, cx, cy, r, tuple(int(v) for v in shade), float(rng.uniform(0, 90)))
        where = "in the center" if place == "center" else f"at the {place}"
        parts.append(f"a {'large' if large else 'small'} {colour} {shape} {where}")
    img = img.resize((size, size), Image.Resampling.LANCZOS)
    out = np.asarray(img, dtype=np.float64) + rng.normal(0, 3, (size, size, 3))
    grey = rng.random() < 0.25
    if grey:  # black-and-white photos: the general domain has them too
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    kind = "" if bg_kind == "plain" else f"{bg_kind} "
    caption = (f"{'a black and white' if grey else 'a'} photo of " + " and ".join(parts)
               + f" on a {kind}{bg_name} background")
    return np.clip(out, 0, 255).astype("u1"), caption


def scenes(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """n scenes as (n, H, W, 3) uint8 and their captions."""
    rng = np.random.default_rng(seed)
    pairs = [scene(rng, size) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), [p[1] for p in pairs]
