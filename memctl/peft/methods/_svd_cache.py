"""Disk cache of weight SVDs, keyed by a hash of the weight's bytes.

SVD of SD-size weights takes seconds per layer on a CPU; trials of a search reuse it.
Files are written 0600 (they are derived from possibly licensed weights).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
from safetensors.torch import load, save

ENV = "MEMCTL_SVD_CACHE"


def cache_dir(explicit: str | os.PathLike | None) -> Path | None:
    """The cache directory: the argument, else $MEMCTL_SVD_CACHE, else none (no caching)."""
    chosen = explicit if explicit is not None else os.environ.get(ENV)
    return Path(chosen) if chosen else None


def weight_key(w: torch.Tensor) -> str:
    h = hashlib.sha256(f"{tuple(w.shape)}:{w.dtype}".encode())
    h.update(w.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def svd(w2d: torch.Tensor, directory: Path | None) -> tuple[torch.Tensor, ...]:
    """(U, S, Vh) of a 2-D weight in fp32, thin, on the weight's device."""
    path = directory / f"{weight_key(w2d)}.safetensors" if directory else None
    if path is not None and path.exists():
        f = load(path.read_bytes())
        return tuple(f[k].to(w2d.device) for k in ("U", "S", "Vh"))
    u, s, vh = (t.contiguous() for t in torch.linalg.svd(w2d.detach().float(), full_matrices=False))
    if path is not None:
        _write_private(path, save({"U": u.cpu(), "S": s.cpu(), "Vh": vh.cpu()}))
    return u, s, vh


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)  # atomic: concurrent trials never read a half-written file
