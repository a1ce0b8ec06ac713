"""Retrain a chosen mask on the full training split and export a stock diffusers pipeline.

The run directory holds everything needed to reuse or audit the result:

    pipeline/          merged weights; loads in StableDiffusionPipeline without memctl
    adapter.safetensors  only the trained tensors (resume / re-apply)
    mask.json          method, space, bits, block names, parameter counts
    config.yaml        the exact config, headed by the command that reproduces it
    metrics.json       d_mem (D_mem prompts) and FID on the test split, training summary
    metrics.jsonl      training log
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from memctl.config import Config, dump_config
from memctl.data.cache import CacheReader
from memctl.data.json_files import read_json, write_json
from memctl.errors import UserError
from memctl.runs.target import RetrainTarget, mask_file
from memctl.train.loop import StepCallback
from memctl.train.stop import stop_in_slurm_job
from memctl.workspace import make_private_dir

TRAINING_SECTIONS = ("model", "data", "peft", "train")


@dataclass
class RetrainResult:
    out_dir: Path
    bits: list[int]
    metrics: dict
    reused: bool = False
    """True when out_dir already held this exact retrain (same mask and config)."""


def _same_run(out_dir: Path, cfg: Config, bits: Sequence[int]) -> bool:
    import yaml

    try:
        done_cfg = yaml.safe_load((out_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return False
    if not isinstance(done_cfg, dict) or read_json(out_dir / "mask.json").get("bits") != "".join(
            map(str, bits)):
        return False
    # Only what shapes the weights: evaluation or cluster settings may change between runs.
    now = cfg.to_dict()
    return all(done_cfg.get(k) == now[k] for k in TRAINING_SECTIONS)


def mask_record(cfg: Config, bits: Sequence[int], block_names: Sequence[str], counts: dict,
                source: str) -> dict:
    return mask_file(cfg.peft.method, cfg.peft.space, cfg.peft.always, bits, block_names,
                     source, trainable=counts["trainable"], total=counts["total"],
                     percent=counts["percent"])


def retrain(cfg: Config, *, model_dir: str, cache_path: str, bits: Sequence[int],
            dmem_indices: Sequence[int], block_names: Sequence[str], out_dir: Path,
            source: str, command: str, on_step: StepCallback | None = None,
            ) -> RetrainResult | None:
    from memctl.models.load import load_pipeline
    from memctl.runs.fine_tune import fine_tune
    from memctl.runs.scoring import require_split, score

    retrain_cfg = dataclasses.replace(cfg.train, steps=cfg.train.retrain_steps)
    run_cfg = dataclasses.replace(cfg, train=retrain_cfg)
    if (out_dir / "metrics.json").exists():
        # Re-running the same retrain (a requeued job, a second `make demo`) reuses it.
        if _same_run(out_dir, run_cfg, bits):
            return RetrainResult(out_dir, list(bits), read_json(out_dir / "metrics.json"),
                                 reused=True)
        raise UserError(f"{out_dir}: already holds a finished retrain of another mask or "
                        "config; move it aside or write elsewhere (retrain --out, another "
                        "run_dir)")
    make_private_dir(out_dir)
    start = time.perf_counter()
    reader = CacheReader(cache_path)
    train_idx = reader.usable("train")
    if not train_idx:
        raise UserError(f"{cache_path}: the training split is empty")
    require_split(reader, cfg, "test", "a retrain")  # before hours of training, not after
    # Duplicated training images, as the data this stands in for holds them.
    train_idx += [i for i in dmem_indices for _ in range(cfg.data.retrain_dmem_repeats)]
    with stop_in_slurm_job() as stop:  # requeue / preemption: checkpoint the step, exit
        tuned = fine_tune(run_cfg, model_dir, bits, reader, train_idx, out_dir, on_step, stop)
    if torch.distributed.is_initialized() and torch.distributed.get_rank() != 0:
        return None  # data-parallel ranks only train; rank 0 evaluates and exports
    d_mem, fid, n_fid = score(tuned.comps, reader, run_cfg, dmem_indices, split="test")

    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().cpu() for k, v in tuned.adapter.state_dict().items()},
              str(out_dir / "adapter.safetensors"))
    unet = tuned.adapter.merge()
    pipe = load_pipeline(model_dir)
    pipe.unet = unet
    pipe.register_modules(unet=unet)
    tmp = out_dir / "pipeline.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    pipe.save_pretrained(tmp, safe_serialization=True)
    os.replace(tmp, out_dir / "pipeline")

    record = mask_record(run_cfg, bits, block_names, tuned.counts, source)
    write_json(out_dir / "mask.json", record)
    dump_config(run_cfg, out_dir / "config.yaml", command)
    metrics = {
        "mask": record["bits"], "d_mem": d_mem, "fid_test": fid, "n_fid": n_fid,
        "trainable": tuned.counts["trainable"], "total": tuned.counts["total"],
        "train_steps": retrain_cfg.steps, "train_images": len(train_idx),
        "final_loss": tuned.result.losses[-1] if tuned.result.losses else None,
        "seconds": round(time.perf_counter() - start, 1), "source": source,
    }
    write_json(out_dir / "metrics.json", metrics)
    return RetrainResult(out_dir, list(bits), metrics)


def retrain_target(target: RetrainTarget, out_dir: Path, command: str, gpus: int = 1,
                   on_step: StepCallback | None = None) -> RetrainResult | None:
    """Retrains a target (memctl.runs.target) on this node, as `gpus` ranks when > 1;
    None only on a data-parallel rank other than 0 (see retrain)."""
    args = dict(**target.retrain_args(), out_dir=out_dir, command=command)
    if gpus > 1:
        return retrain_on_gpus(gpus, cfg=target.cfg, **args)
    return retrain(target.cfg, **args, on_step=on_step)


def retrain_on_gpus(gpus: int, **kwargs) -> RetrainResult:
    """Runs `retrain` as `gpus` data-parallel ranks on this node (one process per GPU).

    submitit's local executor starts the ranks and exports their distributed environment;
    the training engine picks it up. Rank 0 returns the result.
    """
    from memctl.launch.executors import local_ranks_executor

    executor = local_ranks_executor(kwargs["out_dir"] / "ranks", gpus)
    job = executor.submit(retrain, **{**kwargs, "on_step": None})
    results = job.results()
    return next(r for r in results if r is not None)
