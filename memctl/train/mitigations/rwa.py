"""RWA (Somepalli et al. 2023), random word augmentation of captions.

Each time a sample is drawn, with probability p its caption gets n random vocabulary tokens
inserted at random word positions and is encoded afresh; the other samples keep their
cached embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from memctl.config import TrainConfig
from memctl.errors import UserError
from memctl.train.hooks import Mitigation


class RandomWordAugmentation(Mitigation):
    name = "rwa"

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

    @classmethod
    def from_config(cls, cfg: TrainConfig, *, rank: int, tokenizer=None, text_encoder=None,
                    captions: Sequence[str] | None = None,
                    n_prompts: int = 0) -> RandomWordAugmentation:
        if tokenizer is None or text_encoder is None:
            raise UserError("train.mitigation=rwa needs the tokenizer and text encoder "
                            "(load the model components with text=True)")
        rwa = cls(tokenizer, text_encoder, cfg.rwa_prob, cfg.rwa_tokens,
                  seed=cfg.seed + 7919 * (rank + 1))
        if captions is None or len(captions) != n_prompts:
            raise UserError("train.mitigation=rwa needs the caption of every prompt embedding")
        return rwa

    def batch_conditioning(self, prompt_rows: torch.Tensor, prompt_embeds: torch.Tensor,
                           captions: Sequence[str]) -> tuple[torch.Tensor, int]:
        cond, new = self.conditioning(prompt_rows, prompt_embeds, captions)
        return cond, sum(c is not None for c in new)

    def log_fields(self, augmented: int) -> dict:
        return {"augmented": augmented}

    def state_dict(self) -> dict:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["gen"])


def prompt_captions(data, captions: Sequence[str]) -> list[str]:
    """Text of each row of data.prompt_embeds, given the cache's caption list
    (CacheReader.captions): a CachedSet may hold only the prompts its rows use."""
    rows = getattr(data, "prompt_rows", None)
    return list(captions) if rows is None else [captions[int(i)] for i in rows]


MITIGATION = RandomWordAugmentation
