"""The HDF5 cache of VAE latents and text embeddings every trial reads.

One file per (source, model, resolution). Layout:

    latent_mean, latent_logvar  (N, C, h, w) float16, contiguous (a row is one read)
    prompt_index                (N,) int32 -> row of prompt_embeds
    prompt_embeds               (P, L, D) float16, one per unique caption, one chunk each
    empty_embed                 (1, L, D) float16 (unconditional prompt)
    captions                    (P,) utf-8, subject_id / path (N,) utf-8, split (N,) utf-8
    token_count                 (N,) int32 caption length in tokens (before truncation)
    done, failed                (N,) bool: image encoded (resume marker) / image unreadable
    prompt_done                 (P,) bool: caption encoded (resume marker)
    skipped                     (S, 2) utf-8 (path, reason): unreadable images, and items the
                                source left out before caching (missing report, empty caption)
    attrs: fingerprint, model_fingerprint, resolution, preprocessing, token_limit,
           n_truncated (unique captions over token_limit), n_truncated_images, n_source_skipped

Built under `<name>.partial` and renamed when complete: captions first, then images, each
phase resumable from its marker after a kill. One process builds, holding `<name>.lock`;
another that wants the same cache waits for it and reuses the result. Images are decoded
by a thread pool one batch ahead of the encoder. The finished file is opened read-only
without HDF5 locking so many nodes can read it at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image

from memctl.data.sources import Record
from memctl.errors import UserError
from memctl.locks import build_lock

log = logging.getLogger(__name__)

# v2: JPEGs are decoded at a reduced scale (>= 2x the target side) before the resize.
PREPROCESSING = "rgb|jpeg-draft-2x|center-crop|resize-bicubic|[-1,1]|v2"
_STR = h5py.string_dtype("utf-8")


def _open_read(path: Path) -> h5py.File:
    # No HDF5 file locking: trials on many nodes read one file on shared storage.
    return h5py.File(path, "r", locking=False)


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


def _try_load(path: str, resolution: int) -> torch.Tensor | str:
    """The image tensor, or the reason it is skipped."""
    try:
        return load_image(path, resolution)
    except Exception as err:  # decoders raise OSError, SyntaxError, EOFError, ... on bad files
        return image_failure(path, err)


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


def _strings(raw: np.ndarray) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else s for s in raw]


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


def _runs(rows: np.ndarray, max_gap: int = 1) -> Iterator[tuple[int, int]]:
    """(start, stop) positions of `rows` (sorted) whose neighbours lie within max_gap."""
    if len(rows) == 0:
        return
    cuts = np.flatnonzero(np.diff(rows) > max_gap) + 1
    bounds = [0, *cuts.tolist(), len(rows)]
    yield from zip(bounds[:-1], bounds[1:], strict=False)


def _write_rows(ds: h5py.Dataset, rows: np.ndarray, values: np.ndarray) -> None:
    """Writes values[k] to ds[rows[k]] (rows sorted), one slice per consecutive run."""
    for a, b in _runs(rows):
        ds[int(rows[a]):int(rows[b - 1]) + 1] = values[a:b]


def _read_rows(ds: h5py.Dataset, rows: np.ndarray, max_gap: int = 16) -> np.ndarray:
    """ds[rows] for sorted unique rows: close rows are read as one slice, then picked."""
    out = np.empty((len(rows), *ds.shape[1:]), ds.dtype)
    for a, b in _runs(rows, max_gap):
        lo = int(rows[a])
        out[a:b] = ds[lo:int(rows[b - 1]) + 1][rows[a:b] - lo]
    return out


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
    captions = _strings(f["captions"][:])
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
            return [pool.submit(_try_load, records[i].path, resolution) for i in rows]

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


def skip_report_path(out: Path) -> Path:
    """`<cache stem>.skipped.json`: what the last build of `out` skipped and why. The cache
    holds the same list, but a build with nothing usable writes no cache."""
    return out.with_name(f"{out.stem}.skipped.json")


def _skipped_rows(f: h5py.File) -> list[tuple[str, str]]:
    return [(path, reason) for path, reason in map(_strings, f["skipped"][:])]


def _skip_summary(rows: Sequence[tuple[str, str]]) -> dict:
    return {"skipped_by_reason": dict(Counter(r.split(":")[0] for _, r in rows)),
            "skipped": [{"path": p, "reason": r} for p, r in rows]}


def _write_skip_report(out: Path, images: int, usable: int,
                       rows: Sequence[tuple[str, str]]) -> None:
    write_json(skip_report_path(out), {"path": str(out), "written": usable > 0,
                                       "images": images, "usable": usable,
                                       **_skip_summary(rows)})


def read_skip_report(out: Path) -> dict:
    """The last build's skip report ({} when none was written)."""
    return read_json(skip_report_path(out))


def check_cache(path: Path, model_fp: str, resolution: int, fingerprint: str | None = None,
                ) -> None:
    """Refuses a cache built for another model, resolution, preprocessing or record list."""
    with _open_read(path) as f:
        attrs = dict(f.attrs)
    if attrs["model_fingerprint"] != model_fp:
        raise UserError(f"{path}: cache was built for another model "
                        f"(fingerprint {attrs['model_fingerprint']}, model is {model_fp}); "
                        f"remove it to rebuild")
    if int(attrs["resolution"]) != resolution:
        raise UserError(f"{path}: cache was built at {int(attrs['resolution'])} px, "
                        f"config asks for {resolution} px")
    if attrs.get("preprocessing") != PREPROCESSING:
        raise UserError(f"{path}: cache was built with preprocessing {attrs.get('preprocessing')}"
                        f", this version uses {PREPROCESSING}; remove it to rebuild")
    if fingerprint is not None and attrs["fingerprint"] != fingerprint:
        raise UserError(f"{path}: cache fingerprint {attrs['fingerprint']} does not match these "
                        f"records ({fingerprint}): it holds another dataset or captions; "
                        f"remove it to rebuild")


class DiskRows:
    """A cache dataset read row by row on indexing: `rows[idx]` -> tensor (len(idx), ...).

    Stands in for an in-memory tensor that is only ever indexed by batches, e.g. the prompt
    embeddings of a full MIMIC split (~10^5 captions x 118 KB). One read-only handle per
    process, reopened after a fork.
    """

    def __init__(self, path: Path, name: str, dtype: torch.dtype = torch.float32) -> None:
        self.path, self.name, self.dtype = Path(path), name, dtype
        with _open_read(self.path) as f:
            self.shape = tuple(f[name].shape)
        self._file: h5py.File | None = None
        self._pid = -1

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None, "_pid": -1}

    def __getitem__(self, idx: int | Sequence[int] | torch.Tensor) -> torch.Tensor:
        if np.ndim(idx) == 0:
            return self[[int(idx)]][0]
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = _open_read(self.path), os.getpid()
        rows = torch.as_tensor(idx).cpu().numpy().astype(np.int64).reshape(-1)
        uniq, inverse = np.unique(rows, return_inverse=True)
        data = torch.from_numpy(_read_rows(self._file[self.name], uniq)).to(self.dtype)
        return data[torch.from_numpy(inverse.reshape(-1))]


@dataclass
class CachedSet:
    """Rows of the cache held in memory for training or evaluation."""

    latent_mean: torch.Tensor  # (N, C, h, w) float32
    latent_logvar: torch.Tensor
    prompt_index: torch.Tensor  # (N,) long, into prompt_embeds
    prompt_embeds: torch.Tensor  # (P', L, D) float32, the unique prompts these rows use
    # (or a DiskRows over all of the cache's prompts: load(..., prompts_on_disk=True))
    empty_embed: torch.Tensor  # (1, L, D)
    prompt_rows: torch.Tensor | None = None
    """(P',) long: row of each prompt_embeds entry in the cache (index into reader.captions)."""

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

    def load(self, indices: Sequence[int], dtype: torch.dtype = torch.float32,
             prompts_on_disk: bool = False) -> CachedSet:
        """Reads the given rows (repeats allowed) in one sorted pass.

        Only the prompts these rows use are read (a MIMIC cache holds ~10^5 of them, 118 KB
        each); `prompt_index` points into that subset. For a full-split retrain,
        dtype=torch.float16 halves the latents' memory and prompts_on_disk=True leaves the
        prompts in the file, read per batch (`prompt_embeds` is then a DiskRows).
        """
        uniq, inverse = np.unique(np.asarray(indices, dtype=np.int64), return_inverse=True)
        used, local = np.unique(self.prompt_index[uniq], return_inverse=True)
        with _open_read(self.path) as f:
            mean = _read_rows(f["latent_mean"], uniq)
            logvar = _read_rows(f["latent_logvar"], uniq)
            embeds = None if prompts_on_disk else _read_rows(f["prompt_embeds"], used)
            empty = f["empty_embed"][:]
        inv = torch.from_numpy(inverse.reshape(-1))
        if prompts_on_disk:
            return CachedSet(
                torch.from_numpy(mean).to(dtype)[inv], torch.from_numpy(logvar).to(dtype)[inv],
                torch.from_numpy(self.prompt_index[uniq])[inv],
                DiskRows(self.path, "prompt_embeds", dtype),  # type: ignore[arg-type]
                torch.from_numpy(empty).to(dtype),
                torch.arange(len(self.captions)),
            )
        return CachedSet(
            torch.from_numpy(mean).to(dtype)[inv], torch.from_numpy(logvar).to(dtype)[inv],
            torch.from_numpy(local.reshape(-1).astype(np.int64))[inv],
            torch.from_numpy(embeds).to(dtype), torch.from_numpy(empty).to(dtype),
            torch.from_numpy(used.astype(np.int64)),
        )

    def iter_load(self, indices: Sequence[int], rows_per_block: int = 4096,
                  dtype: torch.dtype = torch.float32) -> Iterator[CachedSet]:
        """`indices` in order, `rows_per_block` at a time: a full split that does not fit in
        memory streams through in blocks (shuffle `indices` first for training)."""
        idx = list(indices)
        for start in range(0, len(idx), rows_per_block):
            yield self.load(idx[start:start + rows_per_block], dtype)

    def bytes_per_row(self) -> int:
        """Memory one loaded row takes as float32 (mean + logvar), prompts not counted."""
        with _open_read(self.path) as f:
            return 2 * 4 * int(np.prod(f["latent_mean"].shape[1:]))

    def paths(self, indices: Sequence[int] | None = None) -> list[str]:
        with _open_read(self.path) as f:
            raw = f["path"][:]
        paths = _strings(raw)
        return paths if indices is None else [paths[i] for i in indices]


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
            "images_with_truncated_caption": int(self.attrs.get("n_truncated_images", 0)),
            "token_limit": int(self.attrs.get("token_limit", 0)),
            "bytes": self.path.stat().st_size,
            **_skip_summary(self.skipped),
        }


def read_json(path: Path) -> dict:
    """A JSON object written by write_json; {} when missing or unreadable (half-written)."""
    try:
        obj = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def write_json(path: Path, obj: object) -> None:
    """Atomic owner-only JSON write."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2))
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
