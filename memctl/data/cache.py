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

Built by memctl.data.cache_build; this module reads it. The finished file is opened
read-only without HDF5 locking so many nodes can read it at once. Images are read by
memctl.data.images, JSON side files by memctl.data.json_files.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from memctl.data.images import PREPROCESSING
from memctl.data.json_files import read_json
from memctl.errors import UserError


def open_read(path: Path) -> h5py.File:
    # No HDF5 file locking: trials on many nodes read one file on shared storage.
    return h5py.File(path, "r", locking=False)


def decode_strings(raw: np.ndarray) -> list[str]:
    return [s.decode() if isinstance(s, bytes) else s for s in raw]


def row_runs(rows: np.ndarray, max_gap: int = 1) -> Iterator[tuple[int, int]]:
    """(start, stop) positions of `rows` (sorted) whose neighbours lie within max_gap."""
    if len(rows) == 0:
        return
    cuts = np.flatnonzero(np.diff(rows) > max_gap) + 1
    bounds = [0, *cuts.tolist(), len(rows)]
    yield from zip(bounds[:-1], bounds[1:], strict=False)


def _read_rows(ds: h5py.Dataset, rows: np.ndarray, max_gap: int = 16) -> np.ndarray:
    """ds[rows] for sorted unique rows: close rows are read as one slice, then picked."""
    out = np.empty((len(rows), *ds.shape[1:]), ds.dtype)
    for a, b in row_runs(rows, max_gap):
        lo = int(rows[a])
        out[a:b] = ds[lo:int(rows[b - 1]) + 1][rows[a:b] - lo]
    return out


def skip_report_path(out: Path) -> Path:
    """`<cache stem>.skipped.json`: what the last build of `out` skipped and why. The cache
    holds the same list, but a build with nothing usable writes no cache."""
    return out.with_name(f"{out.stem}.skipped.json")


def skip_summary(rows: Sequence[tuple[str, str]]) -> dict:
    return {"skipped_by_reason": dict(Counter(r.split(":")[0] for _, r in rows)),
            "skipped": [{"path": p, "reason": r} for p, r in rows]}


def read_skip_report(out: Path) -> dict:
    """The last build's skip report ({} when none was written)."""
    return read_json(skip_report_path(out))


def check_cache(path: Path, model_fp: str, resolution: int, fingerprint: str | None = None,
                ) -> None:
    """Refuses a cache built for another model, resolution, preprocessing or record list."""
    with open_read(path) as f:
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
        with open_read(self.path) as f:
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
            self._file, self._pid = open_read(self.path), os.getpid()
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
        with open_read(self.path) as f:
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
        with open_read(self.path) as f:
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

    def paths(self, indices: Sequence[int] | None = None) -> list[str]:
        with open_read(self.path) as f:
            raw = f["path"][:]
        paths = decode_strings(raw)
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
            **skip_summary(self.skipped),
        }
