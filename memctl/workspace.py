"""Resolves a config to the files every step shares: model directory, dataset, cache.

`prepare(cfg)` builds what is missing (the embedded model and dataset, the HDF5 cache);
`Workspace` afterwards only reads. The search head prepares once; workers get the
resolved paths and never build anything.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memctl.config import Config
from memctl.data import cache as cache_mod
from memctl.data.sources import Record, read_csv_manifest
from memctl.data.splits import ProxySet, assign_splits, build_proxy_set
from memctl.errors import UserError

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


def make_private_dir(path: Path) -> Path:
    """Creates a directory (and parents) that only the owner can read."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


@dataclass(frozen=True)
class Workspace:
    run_dir: Path
    model_dir: Path
    cache_path: Path

    def reader(self) -> cache_mod.CacheReader:
        return cache_mod.CacheReader(self.cache_path)


def model_dir(cfg: Config, build: bool = True) -> Path:
    if cfg.model.path:
        from memctl.models.load import check_model_dir

        return check_model_dir(cfg.model.path)
    path = cfg.run_path / "models" / "tiny"
    if not (path / "model_index.json").exists():
        if not build:
            raise UserError(f"{path}: embedded model not built yet (run `memctl cache build`)")
        from memctl.models.tiny import write_tiny_model

        make_private_dir(path.parent)
        write_tiny_model(path)
    return path


def records(cfg: Config) -> list[Record]:
    if cfg.data.source == "csv":
        return read_csv_manifest(cfg.data.path)
    from memctl.data.synth import MANIFEST, write_synth_dataset

    folder = Path(cfg.data.path) if cfg.data.path else cfg.run_path / "data" / "synth"
    manifest = folder / MANIFEST
    if not manifest.exists():
        make_private_dir(folder.parent)
        write_synth_dataset(folder, n=cfg.data.synth_n, seed=cfg.data.split_seed)
    return read_csv_manifest(manifest)


def _cache_path(cfg: Config, recs: list[Record], model_fp: str) -> Path:
    fp = cache_mod.cache_fingerprint(recs, model_fp, cfg.model.resolution)
    split_key = f"{cfg.data.val_fraction}-{cfg.data.test_fraction}-{cfg.data.split_seed}"
    import hashlib

    tag = hashlib.sha256(f"{fp}|{split_key}".encode()).hexdigest()[:12]
    return cfg.run_path / "cache" / f"{cfg.data.source}-{cfg.model.resolution}px-{tag}.h5"


def prepare(cfg: Config, progress: Progress | None = None) -> Workspace:
    """Builds the model, dataset and cache if missing; returns the resolved workspace."""
    make_private_dir(cfg.run_path)
    mdir = model_dir(cfg)
    recs = records(cfg)
    model_fp = cache_mod.model_fingerprint(mdir)
    path = _cache_path(cfg, recs, model_fp)
    if not path.exists():
        from memctl.models.load import load_components

        comps = load_components(mdir)
        labels = assign_splits(
            [r.subject_id for r in recs], cfg.data.val_fraction, cfg.data.test_fraction,
            cfg.data.split_seed, official=[r.split for r in recs],
        )
        enc = cache_mod.Encoders(comps.vae, comps.tokenizer, comps.text_encoder)
        cache_mod.build_cache(path, recs, labels, enc, model_fp, cfg.model.resolution,
                              cfg.data.cache_batch_size, progress)
    else:
        cache_mod.check_cache(path, model_fp, cfg.model.resolution)
    return Workspace(cfg.run_path, mdir, path)


def open_workspace(cfg: Config) -> Workspace:
    """The workspace of an already prepared config; builds nothing."""
    mdir = model_dir(cfg, build=False)
    recs = records(cfg)
    path = _cache_path(cfg, recs, cache_mod.model_fingerprint(mdir))
    if not path.exists():
        raise UserError(f"{path}: cache missing for this config (run `memctl cache build`)")
    return Workspace(cfg.run_path, mdir, path)


def proxy_set(cfg: Config, reader: cache_mod.CacheReader) -> ProxySet:
    """The search's training set: a fraction of train plus D_mem repeated."""
    usable = set(reader.usable())
    labels = [s if i in usable else "skipped" for i, s in enumerate(reader.split)]
    captions = [reader.caption_of(i) for i in range(len(reader))]
    try:
        return build_proxy_set(labels, captions, list(reader.token_count),
                               cfg.data.proxy_fraction, cfg.data.dmem_size,
                               cfg.data.dmem_repeats, cfg.data.dmem_strategy,
                               cfg.data.split_seed)
    except ValueError as err:
        raise UserError(f"{reader.path}: {err}") from None
