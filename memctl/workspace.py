"""Resolves a config to the files every step shares: model directory, dataset, cache.

`prepare(cfg)` builds what is missing (the embedded model and dataset, the HDF5 cache),
each under a lock beside it so that two searches started at once build it once;
`Workspace` afterwards only reads. The search head prepares once; workers get the
resolved paths and never build anything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from memctl.config import Config
from memctl.data import cache as cache_mod
from memctl.data import cache_build
from memctl.data.sources import Record, SourceOptions, SourceResult, load_source
from memctl.data.splits import (
    ProxySet,
    assign_splits,
    build_proxy_set,
    match_ids,
    read_id_list,
    splits_record,
)
from memctl.errors import UserError
from memctl.locks import build_lock

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
        make_private_dir(path.parent)
        with build_lock(path):  # a second search started at once waits, then reuses it
            if not (path / "model_index.json").exists():
                _write_embedded_model(path)
    return path


def _write_embedded_model(path: Path) -> None:
    """Writes the embedded model beside `path`, then renames it into place: the directory
    appears whole or not at all, so a killed build is never taken for a finished one."""
    from memctl.models.tiny import write_tiny_model

    partial = path.with_name(path.name + ".partial")
    for stale in (partial, path):  # left by a killed build
        shutil.rmtree(stale, ignore_errors=True)
    write_tiny_model(partial)
    os.replace(partial, path)


def source_options(cfg: Config) -> SourceOptions:
    d = cfg.data
    return SourceOptions(path=d.path, reports_path=d.reports_path, views=tuple(d.views),
                         caption_template=d.caption_template, class_names=d.class_names,
                         synth_n=d.synth_n, seed=d.split_seed,
                         work_dir=str(cfg.run_path / "data"))


def load_records(cfg: Config) -> SourceResult:
    """The configured source's records and the items it left out (cfg.data.source)."""
    make_private_dir(cfg.run_path / "data")
    opts = source_options(cfg)
    folder = _synth_folder(opts) if cfg.data.source == "synth" else None
    if folder is None or _synth_written(folder):
        return load_source(cfg.data.source, opts)
    with build_lock(folder):  # the built-in dataset is written on first use, by one process
        return load_source(cfg.data.source, opts)


def _synth_folder(opts: SourceOptions) -> Path:
    """Where the synth source writes the built-in dataset (memctl.data.sources.synth)."""
    return Path(opts.path) if opts.path else Path(opts.work_dir or ".") / "synth"


def _synth_written(folder: Path) -> bool:
    from memctl.data.synth import MANIFEST

    return (folder / MANIFEST).exists()


def records(cfg: Config) -> list[Record]:
    return load_records(cfg).records


def _official(cfg: Config, recs: list[Record]) -> list[str] | None:
    return [r.split for r in recs] if cfg.data.official_split else None


def _cache_path(cfg: Config, recs: list[Record], model_fp: str) -> Path:
    fp = cache_build.cache_fingerprint(recs, model_fp, cfg.model.resolution)
    d = cfg.data
    # The official labels decide splits too: a changed split file must give a new cache.
    official = (hashlib.sha256("\n".join(r.split for r in recs).encode()).hexdigest()[:8]
                if d.official_split else "-")
    split_key = f"{d.val_fraction}-{d.test_fraction}-{d.split_seed}-{official}"
    tag = hashlib.sha256(f"{fp}|{split_key}".encode()).hexdigest()[:12]
    return cfg.run_path / "cache" / f"{cfg.data.source}-{cfg.model.resolution}px-{tag}.h5"


def sidecar(cache_path: Path, kind: str) -> Path:
    """A file written beside the cache: `<cache stem>.<kind>.json`."""
    return cache_path.with_name(f"{cache_path.stem}.{kind}.json")


def _write_json_once(path: Path, obj: object) -> None:
    """Atomic owner-only write, skipped when the file already holds `obj`.

    Several workers may write the same record at once: each uses its own temporary file.
    """
    text = json.dumps(obj, indent=1)
    try:
        if path.is_file() and path.read_text() == text:
            return
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except OSError as err:  # a read-only cache folder must not stop a trial
        log.warning("%s: not written (%s)", path, err)


def _write_splits(cfg: Config, path: Path, recs: list[Record], labels: list[str]) -> None:
    d = cfg.data
    _write_json_once(sidecar(path, "splits"), splits_record(
        [r.subject_id for r in recs], labels, d.val_fraction, d.test_fraction, d.split_seed,
        _official(cfg, recs)))


def prepare(cfg: Config, progress: Progress | None = None) -> Workspace:
    """Builds the model, dataset and cache if missing; returns the resolved workspace.

    Beside the cache it writes `<cache>.splits.json`: subject -> split with the seed and
    fractions that drew it (the split itself lives in the cache, which every step reads).
    """
    make_private_dir(cfg.run_path)
    mdir = model_dir(cfg)
    source = load_records(cfg)
    recs = source.records
    model_fp = cache_build.model_fingerprint(mdir)
    path = _cache_path(cfg, recs, model_fp)
    labels = assign_splits([r.subject_id for r in recs], cfg.data.val_fraction,
                           cfg.data.test_fraction, cfg.data.split_seed,
                           official=_official(cfg, recs))
    if not path.exists():
        from memctl.models.load import load_components

        comps = load_components(mdir)
        enc = cache_build.Encoders(comps.vae, comps.tokenizer, comps.text_encoder)
        cache_build.build_cache(path, recs, labels, enc, model_fp, cfg.model.resolution,
                              cfg.data.cache_batch_size, progress, skipped=source.skipped,
                              workers=cfg.data.cache_workers)
    else:
        cache_mod.check_cache(path, model_fp, cfg.model.resolution,
                              cache_build.cache_fingerprint(recs, model_fp, cfg.model.resolution))
    _write_splits(cfg, path, recs, labels)
    return Workspace(cfg.run_path, mdir, path)


def _resolve(cfg: Config) -> tuple[Path, Path]:
    """(model directory, cache path) of an already prepared config; builds nothing."""
    mdir = model_dir(cfg, build=False)
    return mdir, _cache_path(cfg, records(cfg), cache_build.model_fingerprint(mdir))


def _existing(cfg: Config, mdir: Path, path: Path) -> Workspace:
    if not path.exists():
        raise UserError(f"{path}: cache missing for this config (run `memctl cache build`)")
    return Workspace(cfg.run_path, mdir, path)


def open_workspace(cfg: Config) -> Workspace:
    """The workspace of an already prepared config; builds nothing."""
    return _existing(cfg, *_resolve(cfg))


def cache_info(cfg: Config) -> dict:
    """What the cache of this config holds. When the last build wrote none (nothing usable),
    that build's skip report instead (`written: false`), so the reasons stay visible."""
    mdir, path = _resolve(cfg)
    if not path.exists() and (report := cache_mod.read_skip_report(path)):
        return report
    return _existing(cfg, mdir, path).reader().info()


def _dmem_file_rows(cfg: Config, reader: cache_mod.CacheReader, train: list[int]) -> list[int]:
    path = Path(cfg.data.dmem_file)
    if not path.is_file():
        raise UserError(f"{path}: D_mem file not found (data.dmem_file)")
    wanted = read_id_list(path.read_text())
    if not wanted:
        raise UserError(f"{path}: no ids in the D_mem file")
    rows, missing = match_ids(wanted, reader.paths(), train)
    if missing:
        raise UserError(f"{path}: {len(missing)} id(s) match no usable training image, e.g. "
                        f"{', '.join(missing[:3])}")
    return rows


def proxy_set(cfg: Config, reader: cache_mod.CacheReader) -> ProxySet:
    """The search's training set: a fraction of train plus D_mem repeated.

    Records which D_mem rows were chosen (index, path, caption) in
    `<cache>.dmem-<settings hash>.json`.
    """
    d = cfg.data
    usable = set(reader.usable())
    labels = [s if i in usable else "skipped" for i, s in enumerate(reader.split)]
    captions = [reader.caption_of(i) for i in range(len(reader))]
    dmem = None
    if d.dmem_strategy == "file":
        dmem = _dmem_file_rows(cfg, reader, [i for i, s in enumerate(labels) if s == "train"])
    try:
        proxy = build_proxy_set(labels, captions, list(reader.token_count), d.proxy_fraction,
                                d.dmem_size, d.dmem_repeats, d.dmem_strategy, d.split_seed,
                                dmem=dmem)
    except ValueError as err:
        raise UserError(f"{reader.path}: {err}") from None
    settings = {"strategy": d.dmem_strategy, "size": d.dmem_size, "repeats": d.dmem_repeats,
                "seed": d.split_seed, "proxy_fraction": d.proxy_fraction,
                "file": str(Path(d.dmem_file).resolve()) if d.dmem_file else ""}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    paths = reader.paths(proxy.dmem_indices)
    _write_json_once(sidecar(reader.path, f"dmem-{key}"), {
        **settings, "proxy_rows": len(proxy.train_indices),
        "dmem": [{"index": i, "path": p, "subject_id": reader.subject_id[i],
                  "caption": reader.caption_of(i), "tokens": int(reader.token_count[i])}
                 for i, p in zip(proxy.dmem_indices, paths, strict=True)],
    })
    return proxy
