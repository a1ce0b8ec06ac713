"""Threshold (Wen et al. 2024): drop samples whose conditioning pulls the noise prediction hard.

Per sample, ||eps(x_t, c) - eps(x_t, empty)|| at the sample's own training timestep, under
no_grad; samples at or above the threshold are dropped from that step's loss. The threshold
is a number, or a quantile of the norms seen during the first steps (norms grow with latent
size, so a number does not transfer across resolutions).
"""

from __future__ import annotations

import torch

from memctl.config import TrainConfig
from memctl.train import distributed
from memctl.train.hooks import EpsFn, Mitigation


class ThresholdFilter(Mitigation):
    name = "threshold"

    def __init__(self, threshold: float, quantile: float, calibration_steps: int) -> None:
        self.threshold: float | None = threshold or None
        self.quantile, self.calibration_steps = quantile, calibration_steps
        self.seen: list[torch.Tensor] = []
        self.steps_seen = 0

    @staticmethod
    @torch.no_grad()
    def norms(eps: EpsFn, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
              empty: torch.Tensor) -> torch.Tensor:
        """||eps(x_t, c) - eps(x_t, empty)|| per sample, over the whole latent (one forward)."""
        n = len(noisy)
        uncond = empty.to(cond.dtype).expand(n, *empty.shape[1:])
        out = eps(torch.cat([noisy, noisy]), torch.cat([t, t]), torch.cat([cond, uncond]))
        diff = (out[:n].float() - out[n:].float()).flatten(1)
        return diff.norm(dim=1).cpu()

    @classmethod
    def from_config(cls, cfg: TrainConfig, **_: object) -> ThresholdFilter:
        return cls(cfg.threshold, cfg.threshold_quantile, cfg.threshold_calibration_steps)

    def keep_mask(self, eps: EpsFn, noisy: torch.Tensor, t: torch.Tensor, cond: torch.Tensor,
                  empty: torch.Tensor) -> torch.Tensor:
        return self.keep(self.norms(eps, noisy, t, cond, empty))

    def log_fields(self, augmented: int) -> dict:
        return {} if self.threshold is None else {"threshold": self.threshold}

    def keep(self, norms: torch.Tensor) -> torch.Tensor:
        """Mask of samples that stay in the loss; during calibration every sample stays."""
        if self.threshold is None:
            self.seen.append(distributed.all_gather_cat(norms.to(torch.float64)).cpu())
            return torch.ones(len(norms), dtype=torch.bool)
        return norms < self.threshold

    def end_step(self) -> None:
        """Counts a finished optimizer step; fixes the threshold after the calibration steps."""
        if self.threshold is not None:
            return
        self.steps_seen += 1
        if self.steps_seen >= self.calibration_steps:
            # every rank holds the same gathered norms, so the same threshold
            self.threshold = float(torch.quantile(torch.cat(self.seen), self.quantile))
            self.seen = []

    def state_dict(self) -> dict:
        return {"threshold": self.threshold, "seen": list(self.seen),
                "steps_seen": self.steps_seen}

    def load_state_dict(self, state: dict) -> None:
        self.threshold, self.seen = state["threshold"], list(state["seen"])
        self.steps_seen = state["steps_seen"]


MITIGATION = ThresholdFilter
