"""Building the HDF5 cache (layout in memctl.data.cache): encode captions, then images.

Built under `<name>.partial` and renamed when complete: captions first, then images, each
phase resumable from its marker after a kill. One process builds, holding `<name>.lock`;
another that wants the same cache waits for it and reuses the result. Images are decoded
by a thread pool one batch ahead of the encoder.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from memctl.data.cache import (
    check_cache,
    decode_strings,
    row_runs,
    skip_report_path,
    skip_summary,
)
from memctl.data.images import PREPROCESSING, try_load
from memctl.data.json_files import write_json
from memctl.data.sources import Record
from memctl.errors import UserError
from memctl.locks import build_lock

log = logging.getLogger(__name__)

_STR = h5py.string_dtype("utf-8")


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

    @property
    def token_limit(self) -> int:
        return int(self.tokenizer.model_max_length)

    def count_tokens(self, captions: Sequence[str]) -> list[int]:
        """Each caption's token count before truncation (special tokens included)."""
        out: list[int] = []
        for start in range(0, len(captions), 4096):
            ids = self.tokenizer(list(captions[start:start + 4096]), truncation=False)
            out.extend(len(x) for x in ids["input_ids"])
        return out

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


def _vae_factor(vae: torch.nn.Module) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def _init_partial(path: Path, records: Sequence[Record], split_labels: Sequence[str],
                  enc: Encoders, resolution: int, fingerprint: str, model_fp: str,
                  skipped: Sequence[tuple[str, str]]) -> None:
    """Writes everything but the embeddings and latents, which the phases fill in."""
    captions = list(dict.fromkeys(r.caption for r in records))
    index = {c: i for i, c in enumerate(captions)}
    counts = np.array(enc.count_tokens(captions), "i4")
    empty = enc.encode_text([""])[0].half().numpy()
    limit = enc.token_limit
    c_shape = (enc.vae.config.latent_channels, resolution // _vae_factor(enc.vae),
               resolution // _vae_factor(enc.vae))
    n = len(records)
    prompt_index = np.array([index[r.caption] for r in records], "i4")
    with h5py.File(path, "w") as f:
        f.attrs.update(fingerprint=fingerprint, model_fingerprint=model_fp,
                       resolution=resolution, preprocessing=PREPROCESSING, token_limit=limit,
                       n_truncated=int((counts > limit).sum()),
                       n_truncated_images=int((counts[prompt_index] > limit).sum()),
                       n_source_skipped=len(skipped))
        # Contiguous: once the first write allocates them, later writes touch no metadata,
        # so a kill mid-batch cannot leave the file's structure half-written.
        for name in ("latent_mean", "latent_logvar"):
            f.create_dataset(name, shape=(n, *c_shape), dtype="f2")
        f.create_dataset("prompt_index", data=prompt_index)
        f.create_dataset("token_count", data=counts[prompt_index])
        f.create_dataset("prompt_embeds", shape=(len(captions), *empty.shape[1:]), dtype="f2",
                         chunks=(1, *empty.shape[1:]))
        f.create_dataset("empty_embed", data=empty)
        _write_strings(f, "captions", captions)
        _write_strings(f, "subject_id", [r.subject_id for r in records])
        _write_strings(f, "path", [r.path for r in records])
        _write_strings(f, "split", split_labels)
        f.create_dataset("done", data=np.zeros(n, bool))
        f.create_dataset("failed", data=np.zeros(n, bool))
        f.create_dataset("prompt_done", data=np.zeros(len(captions), bool))
        f.create_dataset("skipped", shape=(0, 2), maxshape=(None, 2), dtype=_STR)
        if skipped:
            _append_skipped(f, list(skipped))


def _append_skipped(f: h5py.File, rows: list[tuple[str, str]]) -> None:
    ds = f["skipped"]
    ds.resize(ds.shape[0] + len(rows), axis=0)
    ds[-len(rows):] = np.array(rows, dtype=object)


def _write_rows(ds: h5py.Dataset, rows: np.ndarray, values: np.ndarray) -> None:
    """Writes values[k] to ds[rows[k]] (rows sorted), one slice per consecutive run."""
    for a, b in row_runs(rows):
        ds[int(rows[a]):int(rows[b - 1]) + 1] = values[a:b]


def _open_partial(partial: Path, fingerprint: str) -> bool:
    """True when a `.partial` of this exact build exists and is readable."""
    if not partial.exists():
        return False
    try:
        with h5py.File(partial, "r") as f:
            ok = f.attrs.get("fingerprint") == fingerprint and "prompt_done" in f
            if ok:
                f["done"][:], f["prompt_done"][:]  # noqa: B018 - readable after the kill?
    except (OSError, KeyError):  # killed before the header was flushed
        ok = False
    if not ok:
        log.info("%s: stale or damaged partial build; starting over", partial)
        partial.unlink()
    return ok


def _encode_prompts(f: h5py.File, enc: Encoders, tick: Callable[[int], None]) -> None:
    captions = decode_strings(f["captions"][:])
    todo = np.flatnonzero(~f["prompt_done"][:])
    for start in range(0, len(todo), 64):
        rows = todo[start:start + 64]
        embeds = enc.encode_text([captions[i] for i in rows])[0].half().numpy()
        _write_rows(f["prompt_embeds"], rows, embeds)
        f["prompt_done"][rows] = True  # written last: a kill mid-batch re-encodes the batch
        f.flush()
        tick(len(rows))


def _encode_images(f: h5py.File, records: Sequence[Record], enc: Encoders, resolution: int,
                   batch_size: int, workers: int, tick: Callable[[int], None]) -> None:
    todo = np.flatnonzero(~f["done"][:])
    batches = [todo[s:s + batch_size] for s in range(0, len(todo), batch_size)]
    if not batches:
        return

    with ThreadPoolExecutor(max(1, workers)) as pool:
        def submit(rows: np.ndarray) -> list[Future]:
            return [pool.submit(try_load, records[i].path, resolution) for i in rows]

        pending = submit(batches[0])
        for k, rows in enumerate(batches):
            loaded = [fut.result() for fut in pending]
            if k + 1 < len(batches):
                pending = submit(batches[k + 1])  # decode ahead while this batch encodes
            ok = np.array([i for i, x in zip(rows, loaded, strict=True)
                           if isinstance(x, torch.Tensor)], dtype=np.int64)
            skipped = [(records[i].path, x) for i, x in zip(rows, loaded, strict=True)
                       if isinstance(x, str)]
            if len(ok):
                mean, logvar = enc.encode_images(
                    torch.stack([x for x in loaded if isinstance(x, torch.Tensor)]))
                _write_rows(f["latent_mean"], ok, mean.half().numpy())
                _write_rows(f["latent_logvar"], ok, logvar.half().numpy())
            if skipped:
                bad = np.array(sorted(set(rows.tolist()) - set(ok.tolist())), dtype=np.int64)
                f["failed"][bad] = True
                _append_skipped(f, skipped)
            f["done"][rows] = True  # written last: a kill mid-batch re-encodes the batch
            f.flush()
            tick(len(rows))


def default_workers() -> int:
    """Image-decoding threads: PIL releases the GIL while decoding."""
    return max(1, min(8, os.cpu_count() or 1))


def build_cache(
    out: Path,
    records: Sequence[Record],
    split_labels: Sequence[str],
    enc: Encoders,
    model_fp: str,
    resolution: int,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    skipped: Sequence[tuple[str, str]] = (),
    workers: int = 0,
) -> Path:
    """Encodes every caption and image once into `out`; resumes a `.partial` left by a kill.

    `skipped`: (path, reason) of items the source left out, listed in the cache with the
    unreadable images. progress(done, total) counts captions then images. Raises UserError
    when no image is usable.
    """
    fingerprint = cache_fingerprint(records, model_fp, resolution)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(out.parent, 0o700)
        # Another build of this cache (a second search started at once) holds the lock:
        # wait for it, then reuse its cache instead of taking its `.partial` for stale.
        with build_lock(out):
            if not out.exists():
                _build(out, records, split_labels, enc, model_fp, resolution, fingerprint,
                       batch_size, progress, skipped, workers)
                return out
    check_cache(out, model_fp, resolution, fingerprint)
    return out


def _build(out: Path, records: Sequence[Record], split_labels: Sequence[str], enc: Encoders,
           model_fp: str, resolution: int, fingerprint: str, batch_size: int,
           progress: Callable[[int, int], None] | None, skipped: Sequence[tuple[str, str]],
           workers: int) -> None:
    """build_cache's work, under its lock."""
    if not records:
        _write_skip_report(out, 0, 0, list(skipped))
        raise UserError(f"{out}: nothing to cache (no usable records; see the reasons with "
                        f"`memctl cache info`)")
    partial = out.with_name(out.name + ".partial")
    if not _open_partial(partial, fingerprint):
        _init_partial(partial, records, split_labels, enc, resolution, fingerprint, model_fp,
                      skipped)
        os.chmod(partial, 0o600)
    try:
        f = h5py.File(partial, "r+")
    except OSError as err:  # HDF5 locks files opened for writing
        raise UserError(f"{partial}: cannot open for writing ({err}); is another "
                        f"`memctl cache build` running on it?") from None
    with f:
        total = len(f["prompt_done"]) + len(records)
        count = int(f["prompt_done"][:].sum() + f["done"][:].sum())

        def tick(n: int) -> None:
            nonlocal count
            count += n
            if progress:
                progress(count, total)

        tick(0)
        _encode_prompts(f, enc, tick)
        _encode_images(f, records, enc, resolution, batch_size,
                       workers or default_workers(), tick)
        usable = int((~f["failed"][:]).sum())
        _write_skip_report(out, len(records), usable, _skipped_rows(f))
    if usable == 0:
        raise UserError(f"{out}: no usable images (all {len(records)} failed to load; "
                        f"see the reasons with `memctl cache info`)")
    os.replace(partial, out)


def _skipped_rows(f: h5py.File) -> list[tuple[str, str]]:
    return [(path, reason) for path, reason in map(decode_strings, f["skipped"][:])]


def _write_skip_report(out: Path, images: int, usable: int,
                       rows: Sequence[tuple[str, str]]) -> None:
    write_json(skip_report_path(out), {"path": str(out), "written": usable > 0,
                                       "images": images, "usable": usable,
                                       **skip_summary(rows)})
