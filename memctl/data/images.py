"""Reading images as the cache stores them: deterministic crop and resize to [-1, 1].

PREPROCESSING names the steps; a cache built with other steps is refused (data.cache).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image

# v2: JPEGs are decoded at a reduced scale (>= 2x the target side) before the resize.
PREPROCESSING = "rgb|jpeg-draft-2x|center-crop|resize-bicubic|[-1,1]|v2"


def load_image(path: str, resolution: int) -> torch.Tensor:
    """Deterministic center crop + resize to (3, R, R) in [-1, 1] (no random augmentation)."""
    with Image.open(path) as im:
        # libjpeg decodes at 1/2..1/8 scale while both sides stay >= 2R: a 3000 px radiograph
        # decodes ~10x faster, and the bicubic resize below still antialiases. No-op otherwise.
        im.draft(None, (2 * resolution, 2 * resolution))
        im.load()
        im = im.convert("RGB")
    w, h = im.size
    if w == 0 or h == 0:
        raise ValueError("empty image")
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize(
        (resolution, resolution), Image.Resampling.BICUBIC
    )
    arr = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()).permute(2, 0, 1)
    return arr / 127.5 - 1.0


def image_failure(path: str, err: Exception) -> str:
    """Why an image could not be used, for the cache's skipped list."""
    if isinstance(err, FileNotFoundError):
        return "missing image file"
    try:
        if os.path.getsize(path) == 0:
            return "empty image file"
    except OSError:
        pass
    text = f"{type(err).__name__}: {err}"[:200]
    return f"truncated image: {text}" if "truncated" in str(err) else f"unreadable image: {text}"


def try_load(path: str, resolution: int) -> torch.Tensor | str:
    """The image tensor, or the reason it is skipped."""
    try:
        return load_image(path, resolution)
    except Exception as err:  # decoders raise OSError, SyntaxError, EOFError, ... on bad files
        return image_failure(path, err)
