"""A tiny U-Net, cached set and training call shared by the tests and their submitit jobs.

Importable by job processes (tests.train._tiny), so jobs and in-process reference runs build
exactly the same model and data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
# One prebuilt DeepSpeed op folder for the test command, the tests and their jobs.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".torch_extensions"))

UNET = dict(block_out_channels=(32, 32, 64, 64), layers_per_block=2, cross_attention_dim=32,
            attention_head_dim=8, norm_num_groups=8, sample_size=8)
SCALE = 0.18215
MASK_UP = (0,) * 10 + (1,) * 6  # the up-path blocks: most of the net stays frozen


def make_unet(seed: int = 0):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**UNET)


def make_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)


def make_data(n: int = 12, prompts: int = 3, tokens: int = 8, seed: int = 0):
    from memctl.data.cache import CachedSet

    g = torch.Generator().manual_seed(seed)
    return CachedSet(
        latent_mean=torch.randn(n, 4, 8, 8, generator=g),
        latent_logvar=torch.randn(n, 4, 8, 8, generator=g) - 4,
        prompt_index=torch.arange(n) % prompts,
        prompt_embeds=torch.randn(prompts, tokens, UNET["cross_attention_dim"], generator=g),
        empty_embed=torch.randn(1, tokens, UNET["cross_attention_dim"], generator=g),
    )


def train_config(**overrides):
    from memctl.config import TrainConfig

    base = dict(steps=4, batch_size=2, lr=1e-3, log_every=1)
    return dataclasses.replace(TrainConfig(), **{**base, **overrides})


def run(out_dir: str | None = None, *, bits: tuple[int, ...] = (1,) * 16,
        method: str = "attention", threads: int | None = None, step_sleep: float = 0.0,
        stop_at: int | None = None, sigterm_at: int | None = None, should_stop=None,
        stop_on_sigterm: bool = False, **overrides) -> dict:
    """Trains the tiny U-Net; returns losses, trained tensors, the unet and rank info.

    step_sleep slows steps down so a job can be interrupted mid-run; stop_at raises
    KeyboardInterrupt after that step (a kill that leaves the checkpoints behind);
    sigterm_at sends this process SIGTERM after that step, as SLURM does mid-run;
    stop_on_sigterm makes SIGTERM stop the run (memctl.train.stop), as search workers do.
    """
    from memctl import peft
    from memctl.train.loop import train
    from memctl.train.stop import StopOnSignal

    if out_dir:  # lets a test signal this very process, as SLURM signals a job's tasks
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / f"pid-rank{os.environ.get('RANK', '0')}").write_text(str(os.getpid()))
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # thread count changes CPU float sums: pin it
    try:
        unet = make_unet()
        adapter = peft.apply(unet, method, list(bits))
        cfg = train_config(**overrides)

        def on_step(step: int, total: int, loss: float) -> None:
            if step_sleep:
                time.sleep(step_sleep)
            if stop_at is not None and step == stop_at:
                raise KeyboardInterrupt(f"stopped after step {step}")
            if sigterm_at is not None and step == sigterm_at:
                os.kill(os.getpid(), signal.SIGTERM)

        with StopOnSignal() if stop_on_sigterm else contextlib.nullcontext(should_stop) as stop:
            result = train(unet, adapter.param_groups(cfg.lr), make_data(), make_scheduler(),
                           cfg, scaling_factor=SCALE, on_step=on_step, should_stop=stop,
                           out_dir=Path(out_dir) if out_dir else None)
    finally:
        torch.set_num_threads(previous)
    return {"losses": result.losses, "resumed_from": result.resumed_from,
            "dropped": result.dropped, "rank": int(os.environ.get("RANK", "0")),
            "world_size": int(os.environ.get("WORLD_SIZE", "1")),
            "state": {k: v.detach().clone() for k, v in adapter.state_dict().items()},
            "unet": unet if not os.environ.get("SUBMITIT_EXECUTOR") else None}


# A run with checkpoints to cut and resume (test_resume, test_stop).
STEPS = dict(steps=5, checkpoint_every=2, keep_checkpoints=2)


def assert_same(a: dict, b: dict) -> None:
    """Two runs ended with the same losses and weights."""
    assert a["losses"] == b["losses"]
    assert a["state"].keys() == b["state"].keys()
    for name in a["state"]:
        assert torch.equal(a["state"][name], b["state"][name]), name
