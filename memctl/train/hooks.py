"""The points where the training loop lets a mitigation act; the base class changes nothing.

    mitigation = make_mitigation(cfg, rank=0, tokenizer=tok, text_encoder=enc,
                                 captions=captions, n_prompts=len(data.prompt_embeds))

The loop calls, in order: `batch_conditioning` for each micro-batch drawn (BatchSource),
`keep_mask` before the loss, `end_step` after each optimizer step, `log_fields` for the
metrics log, and `state_dict` / `load_state_dict` for checkpoints.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from memctl.config import TrainConfig

EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class Mitigation:
    name: ClassVar[str] = "none"

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, rank: int, tokenizer=None, text_encoder=None,
                    captions: Sequence[str] | None = None, n_prompts: int = 0) -> Mitigation:
        """Built before the engine starts, so a missing input fails fast."""
        return cls()

    def batch_conditioning(self, prompt_rows: torch.Tensor, prompt_embeds: torch.Tensor,
                           captions: Sequence[str]) -> tuple[torch.Tensor, int] | None:
        """A batch's text conditioning and how many samples it changed; None: the cache's."""
        return None

    def keep_mask(self, eps: EpsFn, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                  empty: torch.Tensor) -> torch.Tensor | None:
        """Which samples of a micro-batch stay in the loss; None: all of them."""
        return None

    def end_step(self) -> None:
        """Called after each optimizer step."""

    def log_fields(self, augmented: int) -> dict:
        """Fields added to each metrics.jsonl record."""
        return {}

    def state_dict(self) -> dict | None:
        return None

    def load_state_dict(self, state: dict) -> None:
        """Restores what state_dict returned."""


def make_mitigation(cfg: TrainConfig, **inputs) -> Mitigation:
    """The mitigation cfg.mitigation names (memctl.train.mitigations.MITIGATIONS)."""
    from memctl.train.mitigations import MITIGATIONS

    if cfg.mitigation not in MITIGATIONS:
        return Mitigation.from_config(cfg, **inputs)
    module = importlib.import_module(MITIGATIONS[cfg.mitigation])
    return module.MITIGATION.from_config(cfg, **inputs)
