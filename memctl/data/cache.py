"""The HDF5 cache of VAE latents and text embeddings every trial reads.

One file per (source, model, resolution). Layout:

    latent_mean, latent_logvar  (N, C, h, w) float16, one chunk per sample
    prompt_index                (N,) int32 -> row of prompt_embeds
    prompt_embeds               (P, L, D) float16, one per unique caption
    empty_embed                 (1, L, D) float16 (unconditional prompt)
    captions                    (P,) utf-8, subject_id / path (N,) utf-8, split (N,) utf-8
    token_count                 (N,) int32 caption length in tokens (before truncation)
    done                        (N,) bool, resume marker while building
    skipped                     (S, 2) utf-8 (path, reason)
    attrs: fingerprint, model_fingerprint, resolution, preprocessing, n_truncated

Built under `<name>.partial` and renamed when complete; a killed build resumes from `done`.
The finished file is opened read-only without locking so many nodes can read it at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from memctl.data.sources import Record
from memctl.errors import UserError

log = logging.getLogger(__name__)

PREPROCESSING = "rgb|center-crop|resize-bicubic|[-1,1]|v1"
_STR = h5py.string_dtype("utf-8")


def _open_read(path: Path) -> h5py.File:
    # No HDF5 file locking: trials on many nodes read one file on shared storage.
    return h5py.File(path, "r", locking=False)


def load_image(path: str, resolution: int) -> torch.Tensor:
    """Deterministic center crop + resize to (3, R, R) in [-1, 1] (no random augmentation)."""
    with Image.open(path) as im:
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


def model_fingerprint(model_dir: str | Path) -> str:
    """Hash of what encoding depends on: VAE, text encoder and tokenizer files.

    Weights are hashed by size plus their first and last MiB, which tells different
    checkpoints apart without reading gigabytes on every start.
    """
    h = hashlib.sha256()
    root = Path(model_dir)
    for sub in ("vae", "text_encoder", "tokenizer"):
        for f in sorted((root / sub).glob("*")):
            if not f.is_file():
                continue
            h.update(f"{sub}/{f.name}:{f.stat().st_size}".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if f.stat().st_size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
    return h.hexdigest()[:16]


def cache_fingerprint(records: Sequence[Record], model_fp: str, resolution: int) -> str:
    h = hashlib.sha256(f"{model_fp}|{resolution}|{PREPROCESSING}".encode())
    for r in records:
        h.update(f"{r.path}\t{r.caption}\t{r.subject_id}\n".encode())
    return h.hexdigest()[:16]


@dataclass
class Encoders:
    """What building a cache needs from the pipeline."""

    vae: torch.nn.Module
    tokenizer: object
    text_encoder: torch.nn.Module
    device: str = "cpu"

    @torch.no_grad()
    def encode_text(self, captions: Sequence[str]) -> tuple[torch.Tensor, list[int]]:
        """Embeddings (B, L, D) and each caption's token count before truncation."""
        tok = self.tokenizer
        counts = [len(ids) for ids in tok(list(captions), truncation=False)["input_ids"]]
        ids = tok(list(captions), padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids.to(self.device)
        return self.text_encoder(ids)[0].float().cpu(), counts

    @torch.no_grad()
    def encode_images(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.vae.encode(pixels.to(self.device, self.vae.dtype)).latent_dist
        return dist.mean.float().cpu(), dist.logvar.float().cpu()


def _write_strings(f: h5py.File, name: str, values: Sequence[str]) -> None:
    f.create_dataset(name, data=np.array(list(values), dtype=object), dtype=_STR)


def _init_partial(path: Path, records: Sequence[Record], split_labels: Sequence[str],
                  enc: Encoders, resolution: int, fingerprint: str, model_fp: str) -> None:
    captions = list(dict.fromkeys(r.caption for r in records))
    index = {c: i for i, c in enumerate(captions)}
    embeds, counts = [], []
    for start in range(0, len(captions), 64):
        e, c = enc.encode_text(captions[start:start + 64])
        embeds.append(e)
        counts.extend(c)
    prompt_embeds = torch.cat(embeds).half().numpy()
    empty = enc.encode_text([""])[0].half().numpy()
    limit = enc.tokenizer.model_max_length
    c_shape = (enc.vae.config.latent_channels, resolution // _vae_factor(enc.vae),
               resolution // _vae_factor(enc.vae))
    n = len(records)
    with h5py.File(path, "w") as f:
        f.attrs.update(fingerprint=fingerprint, model_fingerprint=model_fp,
                       resolution=resolution, preprocessing=PREPROCESSING,
                       n_truncated=int(sum(c > limit for c in counts)))
        for name in ("latent_mean", "latent_logvar"):
            f.create_dataset(name, shape=(n, *c_shape), dtype="f2", chunks=(1, *c_shape))
        f.create_dataset("prompt_index", data=np.array([index[r.caption] for r in records], "i4"))
        f.create_dataset("token_count", data=np.array([counts[index[r.caption]] for r in records],
                                                       "i4"))
        f.create_dataset("prompt_embeds", data=prompt_embeds, chunks=(1, *prompt_embeds.shape[1:]))
        f.create_dataset("empty_embed", data=empty)
        _write_strings(f, "captions", captions)
        _write_strings(f, "subject_id", [r.subject_id for r in records])
        _write_strings(f, "path", [r.path for r in records])
        _write_strings(f, "split", split_labels)
        f.create_dataset("done", data=np.zeros(n, bool))
        f.create_dataset("failed", data=np.zeros(n, bool))
        f.create_dataset("skipped", shape=(0, 2), maxshape=(None, 2), dtype=_STR)


def _vae_factor(vae: torch.nn.Module) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _append_skipped(f: h5py.File, rows: list[tuple[str, str]]) -> None:
    ds = f["skipped"]
    ds.resize(ds.shape[0] + len(rows), axis=0)
    ds[-len(rows):] = np.array(rows, dtype=object)


def build_cache(
    out: Path,
    records: Sequence[Record],
    split_labels: Sequence[str],
    enc: Encoders,
    model_fp: str,
    resolution: int,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Encodes every record once into `out`; resumes a `.partial` left by a killed build."""
    fingerprint = cache_fingerprint(records, model_fp, resolution)
    if out.exists():
        check_cache(out, model_fp, resolution)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(out.parent, 0o700)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        try:
            with h5py.File(partial, "r") as f:
                stale = f.attrs.get("fingerprint") != fingerprint
        except OSError:  # killed before the header was flushed
            stale = True
        if stale:
            partial.unlink()
    if not partial.exists():
        _init_partial(partial, records, split_labels, enc, resolution, fingerprint, model_fp)
        os.chmod(partial, 0o600)
    with h5py.File(partial, "r+") as f:
        done = f["done"][:]
        todo = np.flatnonzero(~done)
        if progress:
            progress(int(done.sum()), len(records))
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            pixels, ok, skipped = [], [], []
            for i in batch:
                try:
                    pixels.append(load_image(records[i].path, resolution))
                    ok.append(int(i))
                except (OSError, UnidentifiedImageError, ValueError) as err:
                    skipped.append((records[i].path, f"unreadable image: {err}"[:200]))
                    f["failed"][int(i)] = True
            if ok:
                mean, logvar = enc.encode_images(torch.stack(pixels))
                for j, i in enumerate(ok):  # rows are sparse on resume: write one by one
                    f["latent_mean"][i] = mean[j].half().numpy()
                    f["latent_logvar"][i] = logvar[j].half().numpy()
            if skipped:
                _append_skipped(f, skipped)
            f["done"][batch] = True  # written last: a kill mid-batch re-encodes the batch
            f.flush()
            if progress:
                progress(len(records) - len(todo) + start + len(batch), len(records))
        if int((~f["failed"][:]).sum()) == 0:
            raise UserError(f"{out}: no usable images (all {len(records)} failed to load)")
    os.replace(partial, out)
    return out


def check_cache(path: Path, model_fp: str, resolution: int) -> None:
    with _open_read(path) as f:
        if f.attrs["model_fingerprint"] != model_fp:
            raise UserError(f"{path}: cache was built for another model "
                            f"(fingerprint {f.attrs['model_fingerprint']}, model is {model_fp})")
        if int(f.attrs["resolution"]) != resolution:
            raise UserError(f"{path}: cache was built at {int(f.attrs['resolution'])} px, "
                            f"config asks for {resolution} px")


@dataclass
class CachedSet:
    """Rows of the cache held in memory for training or evaluation."""

    latent_mean: torch.Tensor  # (N, C, h, w) float32
    latent_logvar: torch.Tensor
    prompt_index: torch.Tensor  # (N,) long, into prompt_embeds
    prompt_embeds: torch.Tensor  # (P, L, D) float32, all unique prompts
    empty_embed: torch.Tensor  # (1, L, D)

    def __len__(self) -> int:
        return len(self.prompt_index)


class CacheReader:
    """Read-only view of a finished cache."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: cache not found (run `memctl cache build`)")
        with _open_read(self.path) as f:
            self.attrs = dict(f.attrs)
            self.split = [s.decode() if isinstance(s, bytes) else s for s in f["split"][:]]
            self.subject_id = [s.decode() if isinstance(s, bytes) else s
                               for s in f["subject_id"][:]]
            self.captions = [s.decode() if isinstance(s, bytes) else s for s in f["captions"][:]]
            self.prompt_index = f["prompt_index"][:].astype(np.int64)
            self.token_count = f["token_count"][:].astype(np.int64)
            self.failed = f["failed"][:]
            self.skipped = [(p.decode(), r.decode()) if isinstance(p, bytes) else (p, r)
                            for p, r in f["skipped"][:]]

    def __len__(self) -> int:
        return len(self.split)

    def usable(self, split: str | None = None) -> list[int]:
        return [i for i, s in enumerate(self.split)
                if not self.failed[i] and (split is None or s == split)]

    def caption_of(self, i: int) -> str:
        return self.captions[self.prompt_index[i]]

    def load(self, indices: Sequence[int]) -> CachedSet:
        """Reads the given rows (repeats allowed) in one sorted pass."""
        uniq, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        with _open_read(self.path) as f:
            mean = torch.from_numpy(f["latent_mean"][uniq].astype(np.float32))[inverse]
            logvar = torch.from_numpy(f["latent_logvar"][uniq].astype(np.float32))[inverse]
            embeds = torch.from_numpy(f["prompt_embeds"][:].astype(np.float32))
            empty = torch.from_numpy(f["empty_embed"][:].astype(np.float32))
        prompt = torch.from_numpy(self.prompt_index[uniq])[inverse]
        return CachedSet(mean, logvar, prompt, embeds, empty)

    def info(self) -> dict:
        counts = {s: self.split.count(s) for s in ("train", "val", "test")}
        return {
            "path": str(self.path),
            "images": len(self),
            "usable": int((~self.failed).sum()),
            "unique_captions": len(self.captions),
            "splits": counts,
            "subjects": len(set(self.subject_id)),
            "resolution": int(self.attrs["resolution"]),
            "fingerprint": str(self.attrs["fingerprint"]),
            "model_fingerprint": str(self.attrs["model_fingerprint"]),
            "captions_truncated": int(self.attrs.get("n_truncated", 0)),
            "bytes": self.path.stat().st_size,
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }


def write_json(path: Path, obj: object) -> None:
    """Atomic owner-only JSON write."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
