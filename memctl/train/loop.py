"""The fine-tuning loop on cached latents and text embeddings.

Reads only the cache (latents are sampled from the stored mean/logvar every step, so no
image is ever re-encoded), trains exactly the parameters handed in, and logs
`metrics.jsonl`. Seeded: the same config and data give the same losses, and a run resumed
from a checkpoint ends with the same weights as one that was never interrupted.

One loop body serves both engines (memctl.train.engine): plain torch or DeepSpeed, one
process or N data-parallel ranks.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from memctl.config import TrainConfig
from memctl.data.cache import CachedSet
from memctl.train import distributed, rng
from memctl.train.batches import Batch, BatchSampler, BatchSource
from memctl.train.checkpoint import Checkpointer
from memctl.train.engine import Engine, make_engine
from memctl.train.hooks import Mitigation, make_mitigation
from memctl.train.metrics_log import MetricsLog
from memctl.train.schedule import lr_lambda
from memctl.train.stop import TrainingStopped

__all__ = ["BatchSampler", "StepCallback", "TrainResult", "lr_lambda", "train"]

StepCallback = Callable[[int, int, float], None]

# Fields that change nothing a step computes: a checkpoint stays valid across them.
_NOT_FINGERPRINTED = ("retrain_steps", "log_every", "checkpoint_every", "keep_checkpoints")


@dataclass
class TrainResult:
    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0
    dropped: int = 0
    """Samples the threshold mitigation dropped from the loss, all steps and ranks."""
    resumed_from: int = 0
    """Step the run continued from (0: started fresh)."""


def trainable_named(unet: nn.Module, groups: Sequence[dict]) -> dict[str, nn.Parameter]:
    """Names of the trained parameters as the module knows them (checkpoint keys)."""
    names = {id(p): n for n, p in unet.named_parameters()}
    named: dict[str, nn.Parameter] = {}
    for i, p in enumerate(p for g in groups for p in g["params"]):
        named[names.get(id(p), f"param.{i}")] = p
    return named


def fingerprint(cfg: TrainConfig, named: dict[str, nn.Parameter], n_rows: int,
                world_size: int) -> str:
    fields = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_FINGERPRINTED}
    shapes = {n: list(p.shape) for n, p in named.items()}
    text = json.dumps([fields, shapes, n_rows, world_size], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _target(noise_scheduler, latents: torch.Tensor, noise: torch.Tensor,
            t: torch.Tensor) -> torch.Tensor:
    if noise_scheduler.config.prediction_type == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, t)
    return noise


def micro_step(engine: Engine, batch: Batch, noise_scheduler, empty: torch.Tensor,
               mitigation: Mitigation) -> tuple[torch.Tensor, int]:
    """Denoising loss of one micro-batch (after the mitigation's drop) and how many it
    dropped."""
    dev = engine.device
    latents, noise, t = batch.latents.to(dev), batch.noise.to(dev), batch.t.to(dev)
    cond = batch.cond.to(dev)
    noisy = noise_scheduler.add_noise(latents, noise, t)
    target = _target(noise_scheduler, latents, noise, t)
    keep = mitigation.keep_mask(engine.forward, noisy, t, cond, empty.to(dev))
    if keep is None:
        keep = torch.ones(len(t), dtype=torch.bool)
    dropped = int((~keep).sum())
    if dropped == len(t):
        # Still a forward and backward (zero gradient): data-parallel ranks must not diverge
        # in collectives, and the accumulation count stays right.
        pred = engine.forward(noisy[:1], t[:1], cond[:1])
        return F.mse_loss(pred.float(), target[:1].float()) * 0.0, dropped
    if dropped:
        k = keep.to(dev)
        noisy, t, cond, target = noisy[k], t[k], cond[k], target[k]
    pred = engine.forward(noisy, t, cond)
    return F.mse_loss(pred.float(), target.float()), dropped


def _accumulate(engine: Engine, source: BatchSource, noise_scheduler, empty: torch.Tensor,
                mitigation: Mitigation, cfg: TrainConfig, step: int) -> tuple[float, int, int]:
    """One optimizer step's micro-batches: (summed loss, samples dropped, captions changed)."""
    loss_sum, dropped, augmented = 0.0, 0, 0
    for _ in range(cfg.grad_accum):
        batch = source.next()
        loss, n_dropped = micro_step(engine, batch, noise_scheduler, empty, mitigation)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss is {loss.item()} at step {step}")
        engine.backward(loss)
        engine.step()
        loss_sum += loss.item()
        dropped += n_dropped
        augmented += batch.augmented
    return loss_sum, dropped, augmented


def _state(done: int, result: TrainResult, source: BatchSource,
           mitigation: Mitigation) -> dict:
    """What a checkpoint holds besides the engine's weights and optimizer."""
    return {"step": done, "losses": list(result.losses), "dropped": result.dropped,
            "source": source.state_dict(), "rng": rng.capture(),
            mitigation.name: mitigation.state_dict()}


def _restore(ckpt: Checkpointer, engine: Engine, source: BatchSource, mitigation: Mitigation,
             result: TrainResult) -> int:
    """Restores the newest checkpoint, if any, into the run; the step it continues from."""
    state = ckpt.restore(engine)
    if state is None:
        return 0
    result.resumed_from = state["step"]
    result.losses, result.dropped = list(state["losses"]), state["dropped"]
    source.load_state_dict(state["source"])
    if state.get(mitigation.name) is not None:
        mitigation.load_state_dict(state[mitigation.name])
    rng.restore(state["rng"])
    return state["step"]


def train(
    unet: torch.nn.Module,
    param_groups: Sequence[dict],
    data: CachedSet,
    noise_scheduler,
    cfg: TrainConfig,
    *,
    scaling_factor: float,
    out_dir: Path | None = None,
    on_step: StepCallback | None = None,
    tokenizer=None,
    text_encoder: torch.nn.Module | None = None,
    captions: Sequence[str] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Runs cfg.steps optimizer steps of masked fine-tuning; returns the losses.

    With `out_dir` and cfg.checkpoint_every, checkpoints go to out_dir/checkpoints and a
    rerun resumes from the newest one. rwa needs `tokenizer`, `text_encoder` and `captions`
    (the text of each data.prompt_embeds row; see mitigations.rwa.prompt_captions).
    A mitigation (cfg.mitigation) acts through the hooks of memctl.train.hooks.
    Once `should_stop()` is true on any rank, the current step is checkpointed and
    TrainingStopped raised (memctl.train.stop).
    """
    # Small weights, gradients and Adam moments drift into denormal floats, which x86 CPUs
    # process many times slower; flushing them to zero is below fp32 resolution.
    torch.set_flush_denormal(True)
    result = TrainResult()
    groups = [g for g in param_groups if g["params"]]
    named = trainable_named(unet, groups)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    if not named:  # nothing may move (freeze, or an all-zeros mask): no optimizer, no steps
        MetricsLog(out_dir / "metrics.jsonl" if out_dir else None).close()
        unet.eval()
        return result

    rank = distributed.setup_env()
    device = distributed.device_for(rank)
    if cfg.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    mitigation = make_mitigation(cfg, rank=rank.rank, tokenizer=tokenizer,  # fails fast
                                 text_encoder=text_encoder, captions=captions,
                                 n_prompts=len(data.prompt_embeds))
    unet.train()
    engine = make_engine(unet, groups, named, cfg, device, rank)
    source = BatchSource(data, cfg.batch_size, cfg.seed, rank, scaling_factor,
                         noise_scheduler.config.num_train_timesteps, mitigation, captions or ())

    ckpt = None
    first = 0
    if out_dir is not None and cfg.checkpoint_every:
        ckpt = Checkpointer(out_dir / "checkpoints", cfg.keep_checkpoints, rank,
                            fingerprint(cfg, named, len(data), rank.world_size))
        first = _restore(ckpt, engine, source, mitigation, result)

    log = MetricsLog(out_dir / "metrics.jsonl" if out_dir and rank.is_main else None, first)
    global_batch = cfg.batch_size * cfg.grad_accum * rank.world_size
    start = time.perf_counter()
    try:
        for step in range(first, cfg.steps):
            lr = engine.lr()
            loss_sum, dropped, augmented = _accumulate(engine, source, noise_scheduler,
                                                       data.empty_embed, mitigation, cfg, step)
            mitigation.end_step()
            # The stop request rides on the step's one collective: every rank stops together.
            loss_sum, dropped, augmented, stop = distributed.all_sum(
                [loss_sum, dropped, augmented, float(bool(should_stop and should_stop()))],
                device)
            loss_value = loss_sum / (cfg.grad_accum * rank.world_size)
            result.losses.append(loss_value)
            result.dropped += int(dropped)
            done = step + 1
            if step % cfg.log_every == 0 or done == cfg.steps:
                record = {"step": step, "loss": loss_value, "lr": lr,
                          "samples_per_s": (done - first) * global_batch
                          / (time.perf_counter() - start),
                          "dropped": int(dropped), "dropped_total": result.dropped}
                log.write({**record, **mitigation.log_fields(int(augmented))})
            if ckpt is not None and (done % cfg.checkpoint_every == 0 or done == cfg.steps
                                     or stop):
                ckpt.save(done, engine, _state(done, result, source, mitigation))
            if on_step and rank.is_main:
                on_step(done, cfg.steps, loss_value)
            if stop:
                raise TrainingStopped(done, checkpointed=ckpt is not None)
    finally:
        log.close()
    result.seconds = time.perf_counter() - start
    ran = cfg.steps - first
    result.samples_per_s = ran * global_batch / result.seconds if ran else 0.0
    engine.finish()
    if cfg.gradient_checkpointing:
        unet.disable_gradient_checkpointing()  # hand the model back as it came
    unet.eval()
    return result
