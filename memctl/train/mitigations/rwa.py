"""Training-time memorisation mitigations, usable with any PEFT method.

- RWA (Somepalli et al. 2023): each time a sample is drawn, with probability p its caption
  gets n random vocabulary tokens inserted at random word positions and is encoded afresh;
  the other samples keep their cached embeddings.
- Threshold (Wen et al. 2024): per sample, ||eps(x_t, c) - eps(x_t, empty)|| at the sample's
  own training timestep, under no_grad; samples at or above the threshold are dropped from
  that step's loss. The threshold is a number, or a quantile of the norms seen during the
  first steps (norms grow with latent size, so a number does not transfer across resolutions).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from memctl.config import TrainConfig
from memctl.errors import UserError
from memctl.train import distributed


class RandomWordAugmentation:
    def __init__(self, tokenizer, text_encoder: torch.nn.Module, prob: float, n_tokens: int,
                 seed: int) -> None:
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.prob, self.n_tokens = prob, n_tokens
        special = set(tokenizer.all_special_ids)
        self.vocab_ids = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
        if not len(self.vocab_ids):
            raise UserError("train.mitigation=rwa: the tokenizer has no non-special tokens")
        self.gen = torch.Generator().manual_seed(seed)

    def _random_word(self) -> str:
        while True:  # a few byte-level tokens decode to nothing: draw again
            i = torch.randint(len(self.vocab_ids), (1,), generator=self.gen).item()
            word = self.tokenizer.decode([int(self.vocab_ids[i])]).strip()
            if word:
                return word

    def augment(self, caption: str) -> str:
        words = caption.split()
        for _ in range(self.n_tokens):
            pos = torch.randint(len(words) + 1, (1,), generator=self.gen).item()
            words.insert(pos, self._random_word())
        return " ".join(words)

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer
        ids = tok(list(captions), padding="max_length", max_length=tok.model_max_length,
                  truncation=True, return_tensors="pt").input_ids
        device = next(self.text_encoder.parameters()).device
        out = self.text_encoder(ids.to(device))[0].float().cpu()
        return out.half().float()  # the cache stores fp16: augmented rows match cached ones

    def conditioning(self, prompt_rows: torch.Tensor, prompt_embeds: torch.Tensor,
                     captions: Sequence[str]) -> tuple[torch.Tensor, list[str | None]]:
        """Embeddings for a batch (a new tensor: the cache is never written) and, per sample,
        its augmented caption or None."""
        cond = prompt_embeds[prompt_rows]  # advanced indexing copies
        chosen = torch.rand(len(prompt_rows), generator=self.gen) < self.prob
        new: list[str | None] = [None] * len(prompt_rows)
        for j in torch.nonzero(chosen).flatten().tolist():
            new[j] = self.augment(captions[int(prompt_rows[j])])
        rows = [j for j, c in enumerate(new) if c is not None]
        if rows:
            cond[rows] = self.encode([new[j] for j in rows]).to(cond.dtype)
        return cond, new

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


class ThresholdFilter:
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


def prompt_captions(data, captions: Sequence[str]) -> list[str]:
    """Text of each row of data.prompt_embeds, given the cache's caption list
    (CacheReader.captions): a CachedSet may hold only the prompts its rows use."""
    rows = getattr(data, "prompt_rows", None)
    return list(captions) if rows is None else [captions[int(i)] for i in rows]


def make_rwa(cfg: TrainConfig, tokenizer, text_encoder, rank: int) -> RandomWordAugmentation:
    if tokenizer is None or text_encoder is None:
        raise UserError("train.mitigation=rwa needs the tokenizer and text encoder "
                        "(load the model components with text=True)")
    return RandomWordAugmentation(tokenizer, text_encoder, cfg.rwa_prob, cfg.rwa_tokens,
                                  seed=cfg.seed + 7919 * (rank + 1))


def make_threshold(cfg: TrainConfig) -> ThresholdFilter:
    return ThresholdFilter(cfg.threshold, cfg.threshold_quantile, cfg.threshold_calibration_steps)
