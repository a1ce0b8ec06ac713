"""Micro-batches from the cached set: rows, sampled latents, noise and timesteps.

Every rank draws the same global batch order (same seed) and takes its own slice, so the
ranks together see exactly what one process with the global batch would; noise comes from a
per-rank generator. All draws come from generators whose state is checkpointed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from memctl.data.cache import CachedSet
from memctl.train.distributed import Rank
from memctl.train.hooks import Mitigation


class BatchSampler:
    """Seeded epoch-wise shuffling over the set's rows (repeats in the set stay repeats)."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.gen = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)

    def next(self) -> torch.Tensor:
        while len(self.order) < self.batch_size:
            self.order = torch.cat([self.order, torch.randperm(self.n, generator=self.gen)])
        batch, self.order = self.order[: self.batch_size], self.order[self.batch_size :]
        return batch

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state(), "order": self.order.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])
        self.order = state["order"].clone()


@dataclass
class Batch:
    idx: torch.Tensor
    latents: torch.Tensor
    cond: torch.Tensor
    noise: torch.Tensor
    t: torch.Tensor
    augmented: int = 0


class BatchSource:
    def __init__(self, data: CachedSet, batch_size: int, seed: int, rank: Rank,
                 scaling_factor: float, num_train_timesteps: int,
                 mitigation: Mitigation | None = None,
                 captions: Sequence[str] = ()) -> None:
        self.data, self.rank, self.batch_size, self.captions = data, rank, batch_size, captions
        self.scale, self.timesteps = scaling_factor, num_train_timesteps
        self.mitigation = mitigation or Mitigation()
        self.sampler = BatchSampler(len(data), batch_size * rank.world_size, seed)
        # rank 0 uses the plain seed, so a lone process draws what it always drew
        self.gen = torch.Generator().manual_seed(seed + 1_000_003 * rank.rank)

    def next(self) -> Batch:
        lo = self.rank.rank * self.batch_size
        idx = self.sampler.next()[lo:lo + self.batch_size]
        data = self.data
        std = torch.exp(0.5 * data.latent_logvar[idx].float())
        eps = torch.randn(std.shape, generator=self.gen)
        latents = (data.latent_mean[idx].float() + std * eps) * self.scale
        rows = data.prompt_index[idx]
        changed = self.mitigation.batch_conditioning(rows, data.prompt_embeds, self.captions)
        cond, augmented = changed if changed is not None else (data.prompt_embeds[rows], 0)
        cond = cond.float()
        noise = torch.randn(latents.shape, generator=self.gen)
        t = torch.randint(0, self.timesteps, (latents.shape[0],), generator=self.gen)
        return Batch(idx, latents, cond, noise, t, augmented)

    def state_dict(self) -> dict:
        return {"sampler": self.sampler.state_dict(), "gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state["sampler"])
        self.gen.set_state(state["gen"])
