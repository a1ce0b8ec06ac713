"""Evaluate a retrained run directory on the paper's comparison columns.

    RUN_DIR/pipeline + RUN_DIR/config.yaml  ->  RUN_DIR/evaluation.json

    fid_test       FID of one generation per test prompt (fixed seeded subset) vs the test split
    amd            mean over those generations of the cosine distance to the nearest training
                   image, in the same feature space (lower: closer to training data)
    text_image     BioViL-T or CLIP score of the generations against their captions
    extraction     Carlini et al. on the D_mem prompts (or the first training captions,
                   eval.attack_prompts): cliques of near-duplicate generations, confirmed
                   against the prompt's own training images; counts extracted prompts and
                   distinct extracted training images, with the attack's settings
    d_mem          d_mem on D_mem by the run's search.dmem (what the search optimised:
                   noised data or the sampling trajectory), named in d_mem_variant
    d_mem_sampling d_mem along the attack's own denoising passes (no second pass)

The JSON holds cache row numbers and scores only, never captions or pixels; the attack's
nearest (generation, training image) pairs go to nearest.npz beside it (owner-only), which
only `memctl report --include-images` shows.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from memctl.config import Config, EvalConfig, load_config, replace_section
from memctl.data.cache import CacheReader
from memctl.data.images import load_image
from memctl.data.json_files import read_json, write_json
from memctl.errors import UserError
from memctl.metrics import amd, extraction_attack, generate
from memctl.metrics.features import get_extractor
from memctl.metrics.text_image import TextImageScore, biovil_t_score, clip_score
from memctl.models.load import Components, load_components
from memctl.runs.scoring import (
    dmem_of,
    fid_against,
    generate_for_split,
    sampling_settings,
    split_stats,
)

Progress = Callable[[str], None]
MAX_TRAIN_IMAGES_PER_PROMPT = 64
"""Training images compared per attacked prompt (a caption can be shared by thousands)."""
NEAREST_FILE = "nearest.npz"
MAX_NEAREST_PAIRS = 32  # enough to look at; the file stays small


def run_config(run_dir: Path, overrides: tuple[str, ...] = ()) -> Config:
    """The config a run directory was trained with, plus command-line overrides."""
    if not (run_dir / "pipeline" / "model_index.json").is_file():
        raise UserError(f"{run_dir}: no pipeline/ here (run `memctl retrain` or "
                        "`memctl baselines` first)")
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}/config.yaml: missing; cannot tell which data it was "
                        "trained on")
    return load_config(str(run_dir / "config.yaml"), list(overrides))


def attacked_prompts(reader: CacheReader, rows: list[int], n: int) -> list[int]:
    """The first n distinct prompts among `rows` (the D_mem rows or the training split), as
    cache rows (one per prompt)."""
    seen: dict[int, int] = {}
    for row in rows:
        seen.setdefault(int(reader.prompt_index[row]), row)
    return list(seen.values())[:n]


def _train_rows_by_prompt(reader: CacheReader) -> dict[int, list[int]]:
    rows: dict[int, list[int]] = {}
    for i in reader.usable("train"):
        rows.setdefault(int(reader.prompt_index[i]), []).append(i)
    return rows


def _images(reader: CacheReader, rows: list[int], resolution: int) -> torch.Tensor:
    return (torch.stack([load_image(p, resolution) for p in reader.paths(rows)]) + 1) / 2


def _uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [0, 1] -> (N, H, W, C) uint8."""
    return (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def keep_nearest(path: Path, gens: list[torch.Tensor], trains: list[torch.Tensor],
                 compared: list[list[int]], records: list) -> None:
    """Each attacked prompt's clique member closest to a training image, beside that image,
    for `memctl report --include-images` (pixels: owner-only, never in evaluation.json)."""
    keep = [(k, r) for k, r in enumerate(records)
            if r.nearest_generation >= 0 and r.nearest_train >= 0][:MAX_NEAREST_PAIRS]
    if not keep:  # no pair now: a file from an earlier evaluation would show stale pictures
        path.unlink(missing_ok=True)
        return
    arrays = {
        "generated": _uint8(torch.stack([gens[k][r.nearest_generation] for k, r in keep])),
        "train": _uint8(torch.stack([trains[k][r.nearest_train] for k, r in keep])),
        "rows": np.array([compared[k][r.nearest_train] for k, r in keep]),
        "l2": np.array([r.min_train_l2 for _, r in keep]),
        "extracted": np.array([r.extracted for _, r in keep]),
    }
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def extraction(comps: Components, reader: CacheReader, cfg: Config,
               dmem_indices: list[int], nearest: Path | None = None
               ) -> tuple[dict, float | None]:
    """The attack on D_mem (or training) prompts; returns (summary, d_mem along its sampling
    passes). `nearest`: where to keep each prompt's nearest (generation, training image)."""
    ev = cfg.eval
    pool = dmem_indices if ev.attack_prompts == "dmem" else reader.usable("train")
    prompts = attacked_prompts(reader, pool, ev.extraction_prompts)
    settings = {"attack_prompts": ev.attack_prompts,
                "generations_per_prompt": ev.extraction_generations,
                "clique_size": ev.clique_size, "edge_threshold": ev.edge_threshold,
                "extraction_threshold": ev.extraction_threshold, "grid": ev.tile_grid}
    if not prompts:
        return {"prompts": 0, **settings, "n_memorised": 0, "n_extracted": 0,
                "n_extracted_images": 0, "records": []}, None
    by_prompt = _train_rows_by_prompt(reader)
    data = reader.load(prompts)
    shape = tuple(data.latent_mean.shape[1:])
    gens, trains, dmems, compared = [], [], [], []
    for k, row in enumerate(prompts):
        embeds = data.prompt_embeds[data.prompt_index[k : k + 1]].expand(
            ev.extraction_generations, -1, -1)
        out = generate(comps.unet, comps.vae, comps.scheduler, embeds, data.empty_embed,
                       sampling_settings(ev, seed=ev.seed + 1_000_003 * (k + 1),
                                         latent_shape=shape),
                       return_dmem=True)
        gens.append(out.images)
        dmems.append(out.dmem if out.dmem is not None else np.nan)
        compared.append(by_prompt.get(int(reader.prompt_index[row]),
                                      [row])[:MAX_TRAIN_IMAGES_PER_PROMPT])
        trains.append(_images(reader, compared[-1], out.images.shape[-1]))
    result = extraction_attack(gens, trains, grid=ev.tile_grid,
                               edge_threshold=ev.edge_threshold, clique_size=ev.clique_size,
                               extraction_threshold=ev.extraction_threshold)
    records = [{"row": prompts[r.prompt_index], "clique_size": r.clique_size,
                "memorised": r.memorised, "min_train_l2": r.min_train_l2,
                "extracted": r.extracted,
                "extracted_rows": [compared[r.prompt_index][i] for i in r.extracted_train]}
               for r in result.records]
    if nearest is not None:
        keep_nearest(nearest, gens, trains, compared, result.records)
    images = {row for rec in records for row in rec["extracted_rows"]}
    summary = {"prompts": len(prompts), **settings, "n_memorised": result.n_memorised,
               "n_extracted": result.n_extracted, "n_extracted_images": len(images),
               "records": records}
    return summary, float(np.nanmean(dmems))


def text_image(images: torch.Tensor, captions: list[str], cfg: Config) -> TextImageScore:
    kind, weights = cfg.eval.text_image, cfg.eval.text_image_weights or None
    if kind == "none":
        return TextImageScore("none", None, len(images), "eval.text_image is none")
    if kind == "biovil-t":
        return biovil_t_score(images, captions, weights)
    if weights is None or not Path(weights).is_dir():
        return TextImageScore("clip_score", None, len(images),
                              f"eval.text_image_weights: no local CLIP model at {weights}")
    return clip_score(images, captions, weights)


def evaluate(run_dir: Path, overrides: tuple[str, ...] = (),
             progress: Progress | None = None, eval_cfg: EvalConfig | None = None,
             dmem: str | None = None) -> dict:
    """Scores RUN_DIR's pipeline and writes RUN_DIR/evaluation.json (atomically).

    The run's own config.yaml says which data it was trained on; `eval_cfg` (or `eval.*`
    overrides) replaces its evaluation settings, `dmem` (or a `search.dmem` override) its
    d_mem variant (a reused retrain's config.yaml keeps the one it was trained under).
    """
    from memctl.workspace import open_workspace, proxy_set

    say = progress or (lambda _msg: None)
    start = time.perf_counter()
    cfg = run_config(run_dir, overrides)
    if eval_cfg is not None:
        cfg = dataclasses.replace(cfg, eval=eval_cfg)
    if dmem is not None:
        cfg = replace_section(cfg, "search", "evaluate", dmem=dmem)
    ws = open_workspace(cfg)
    reader = ws.reader()
    dmem_rows = proxy_set(cfg, reader).dmem_indices
    comps = load_components(run_dir / "pipeline", text=False)
    extractor = get_extractor(cfg.eval.extractor, cfg.eval.extractor_weights or None)

    say(f"d_mem on D_mem ({cfg.search.dmem})")
    d_mem = dmem_of(comps, reader, cfg, dmem_rows)
    say("generating for the test prompts")
    images, rows = generate_for_split(comps, reader, cfg, "test")
    if not rows:
        raise UserError(f"{reader.path}: the test split is empty; nothing to evaluate on")
    say("FID and AMD")
    fid = fid_against(images, reader, cfg, "test", extractor)
    train_feats = split_stats(reader, "train", extractor, cfg.model.resolution,
                              keep_features=True).features
    fake_feats = extractor(images)
    amd_value = float(amd(fake_feats, train_feats))
    say("text-image score")
    ti = text_image(images, [reader.caption_of(i) for i in rows], cfg)
    say("extraction attack")
    attack, d_mem_sampling = extraction(comps, reader, cfg, dmem_rows,
                                        nearest=run_dir / NEAREST_FILE)

    mask = read_json(run_dir / "mask.json")
    result = {
        "run_dir": str(run_dir), "mask": mask.get("bits", ""), "method": cfg.peft.method,
        "space": cfg.peft.space, "mitigation": cfg.train.mitigation,
        "trainable": mask.get("trainable"), "total": mask.get("total"),
        "fid_test": fid, "n_fid": len(rows), "amd": amd_value,
        "text_image": {"name": ti.name, "value": ti.value, "n": ti.n, "reason": ti.reason},
        "extraction": attack, "d_mem": d_mem, "d_mem_variant": cfg.search.dmem,
        "d_mem_sampling": d_mem_sampling,
        "extractor": cfg.eval.extractor, "eval_settings": dataclasses.asdict(cfg.eval),
        "seconds": round(time.perf_counter() - start, 1),
    }
    write_json(run_dir / "evaluation.json", result)
    return result


def evaluated_with(run_dir: Path, eval_cfg: EvalConfig, dmem: str = "noised") -> dict | None:
    """RUN_DIR's evaluation if it was made with exactly these settings and d_mem variant
    (search.dmem; evaluations that do not record one used noised), else None."""
    done = read_json(run_dir / "evaluation.json")
    same = (done.get("eval_settings") == dataclasses.asdict(eval_cfg)
            and done.get("d_mem_variant", "noised") == dmem)
    return done if same else None
