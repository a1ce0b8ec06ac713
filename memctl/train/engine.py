"""Engines: what differs between a plain torch loop and DeepSpeed, behind one interface.

The loop calls, per micro-batch, `forward`, `backward(loss)` and `step()`; an engine steps
the optimizer (clip, AdamW, schedule, zero grads) only at the accumulation boundary, so the
loop body is the same for both. `save`/`load` hold trained tensors and optimizer and
scheduler state only; `finish` hands the model back in fp32 with frozen tensors untouched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn

from memctl.config import TrainConfig
from memctl.train import distributed
from memctl.train.distributed import Rank
from memctl.train.ds_config import build as build_ds_config
from memctl.train.ds_config import precision_of
from memctl.train.extensions import use_extensions_dir
from memctl.train.precision import FrozenStash, cast_frozen
from memctl.train.schedule import make_scheduler

TORCH_STATE = "engine.pt"
DS_TAG = "deepspeed"


class Engine(Protocol):
    device: torch.device
    precision: str

    def forward(self, sample: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor) -> torch.Tensor: ...

    def backward(self, loss: torch.Tensor) -> None: ...

    def step(self) -> bool:
        """One micro-batch done; True when the optimizer stepped."""

    def lr(self) -> float: ...

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...

    def finish(self) -> None: ...


class TorchEngine:
    """AdamW + LambdaLR in plain torch; data-parallel by averaging gradients over ranks."""

    def __init__(self, unet: nn.Module, groups: Sequence[dict], named: dict[str, nn.Parameter],
                 cfg: TrainConfig, device: torch.device, rank: Rank) -> None:
        self.module, self.named, self.device, self.rank = unet, named, device, rank
        self.params = list(named.values())
        self.precision, self.clip, self.accum, self.micro = cfg.precision, cfg.grad_clip, \
            cfg.grad_accum, 0
        distributed.init_process_group(rank, device)
        self.stash = FrozenStash(unet, self.params) if cfg.precision == "bf16" else None
        unet.to(device)
        if self.stash is not None:
            cast_frozen(unet, self.params, torch.bfloat16)
        self.optimizer = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = make_scheduler(cfg)(self.optimizer)

    def forward(self, sample: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ctx = (torch.autocast(self.device.type, dtype=torch.bfloat16)
               if self.precision == "bf16" else contextlib.nullcontext())
        with ctx:
            return self.module(sample, t, cond).sample

    def backward(self, loss: torch.Tensor) -> None:
        (loss / self.accum).backward()

    def step(self) -> bool:
        self.micro += 1
        if self.micro % self.accum:
            return False
        if distributed.active():
            self._average_grads()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.params, self.clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True

    def _average_grads(self) -> None:
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= dist.get_world_size()
        offset = 0
        for p, g in zip(self.params, grads, strict=True):
            p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
            offset += g.numel()

    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    def save(self, directory: Path) -> None:
        if self.rank.is_main:  # every rank holds the same weights and optimizer state
            torch.save({"trainable": {n: p.detach().cpu() for n, p in self.named.items()},
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": self.scheduler.state_dict()}, directory / TORCH_STATE)

    def load(self, directory: Path) -> None:
        state = torch.load(directory / TORCH_STATE, map_location="cpu", weights_only=True)
        load_trainable(self.named, state["trainable"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.micro = 0

    def finish(self) -> None:
        if self.stash is not None:
            self.stash.restore(self.module, self.params, master=lambda p: p)


class DeepSpeedEngine:
    """deepspeed.initialize over the trained parameters only; ZeRO 0-2, fp32 or bf16."""

    def __init__(self, unet: nn.Module, groups: Sequence[dict], named: dict[str, nn.Parameter],
                 cfg: TrainConfig, device: torch.device, rank: Rank) -> None:
        use_extensions_dir()  # before deepspeed builds or loads its CPU comm op
        logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
        import deepspeed

        self.module, self.named, self.device, self.rank = unet, named, device, rank
        self.params = list(named.values())
        deepspeed.init_distributed(dist_backend=distributed.backend_for(device),
                                   auto_mpi_discovery=False, verbose=False)
        config = build_ds_config(cfg, rank.world_size, device)
        self.precision = precision_of(config)
        self.dtype = torch.bfloat16 if self.precision == "bf16" else torch.float32
        # DeepSpeed casts the whole module (buffers too) to bf16: keep fp32 originals to restore
        self.stash = FrozenStash(unet, self.params) if self.precision == "bf16" else None
        self.ds, _, _, _ = deepspeed.initialize(model=unet, model_parameters=list(groups),
                                                config=config, lr_scheduler=make_scheduler(cfg))

    def forward(self, sample: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.ds(sample.to(self.dtype), t, cond.to(self.dtype)).sample

    def backward(self, loss: torch.Tensor) -> None:
        self.ds.backward(loss)  # scales by 1 / gradient_accumulation_steps itself

    def step(self) -> bool:
        boundary = self.ds.is_gradient_accumulation_boundary()
        self.ds.step()
        return boundary

    def lr(self) -> float:
        return self.ds.get_lr()[0]

    def save(self, directory: Path) -> None:
        # Collective: every rank writes its ZeRO partition; frozen weights are left out.
        self.ds.save_checkpoint(str(directory), tag=DS_TAG, exclude_frozen_parameters=True,
                                save_latest=False)

    def load(self, directory: Path) -> None:
        path, _ = self.ds.load_checkpoint(str(directory), tag=DS_TAG, load_module_strict=False,
                                          load_optimizer_states=True,
                                          load_lr_scheduler_states=True)
        if path is None:
            raise RuntimeError(f"{directory}: DeepSpeed could not load its checkpoint")

    def finish(self) -> None:
        if self.stash is not None:
            self.stash.restore(self.module, self.params, master=self._master_lookup())

    def _master_lookup(self) -> Callable[[nn.Parameter], torch.Tensor]:
        """fp32 master of a trained parameter, whichever bf16 optimizer DeepSpeed chose."""
        from deepspeed.utils import safe_get_full_fp32_param

        # ZeRO 0 + bf16 uses DeepSpeed's fp16 optimizers, without the fragment API: map their
        # groups (per-tensor fp32 copies when unfused, one flat fp32 buffer per group when fused)
        flat: dict[int, torch.Tensor] = {}
        opt = self.ds.optimizer
        for group, masters in zip(getattr(opt, "fp16_groups", []),
                                  getattr(opt, "fp32_groups", []), strict=False):
            flat.update({id(q): m for q, m in zip(group, masters, strict=True)})
        for group, master in zip(getattr(opt, "fp16_groups", []),
                                 getattr(opt, "fp32_groups_flat", []), strict=False):
            offset = 0
            for q in group:
                flat[id(q)] = master[offset:offset + q.numel()].view_as(q)
                offset += q.numel()

        def master(p: nn.Parameter) -> torch.Tensor:
            found = safe_get_full_fp32_param(p)
            if found is None:
                found = flat.get(id(p))
            if found is None:
                raise RuntimeError("DeepSpeed optimizer holds no fp32 master for a trained tensor")
            return found

        return master


def load_trainable(named: dict[str, nn.Parameter], state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = sorted(set(named) - set(state)), sorted(set(state) - set(named))
    if missing or unexpected:
        raise RuntimeError(f"checkpoint tensors differ: missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]}")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(state[name])


def make_engine(unet: nn.Module, groups: Sequence[dict], named: dict[str, nn.Parameter],
                cfg: TrainConfig, device: torch.device, rank: Rank) -> Engine:
    cls = DeepSpeedEngine if cfg.engine == "deepspeed" else TorchEngine
    return cls(unet, groups, named, cfg, device, rank)
