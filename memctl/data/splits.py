"""Subject-level train/val/test splits and the search's proxy set (fraction of train + D_mem)."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SPLITS = ("train", "val", "test")
_OFFICIAL = {"train": "train", "validate": "val", "val": "val", "test": "test"}


def _unit_hash(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(
    subject_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    official: Sequence[str] | None = None,
) -> list[str]:
    """Split label per sample; all images of a subject share one split.

    A subject's split comes from a seeded hash of its id, so the assignment is stable across
    runs and does not move when images are added. An official split, where given, wins.
    """
    labels = []
    for i, subject in enumerate(subject_ids):
        if official is not None and official[i] in _OFFICIAL:
            labels.append(_OFFICIAL[official[i]])
            continue
        u = _unit_hash(seed, subject)
        labels.append("test" if u < test_fraction else "val" if u < test_fraction + val_fraction
                      else "train")
    return labels


@dataclass(frozen=True)
class ProxySet:
    """Indices into the cache: the search's training set and its D_mem part."""

    train_indices: list[int]
    """Sampled fraction of train plus each D_mem index repeated `repeats` times."""
    dmem_indices: list[int]
    repeats: int


def select_dmem(
    train_indices: Sequence[int],
    captions: Sequence[str],
    token_counts: Sequence[int],
    size: int,
    strategy: str,
    seed: int = 0,
) -> list[int]:
    """Picks D_mem from train: distinct captions where possible, deterministic per seed."""
    rng = np.random.default_rng(seed)
    idx = list(train_indices)
    if strategy == "longest":
        order = sorted(idx, key=lambda i: (-token_counts[i], i))
    elif strategy == "frequent":
        freq = Counter(captions[i] for i in idx)
        order = sorted(idx, key=lambda i: (-freq[captions[i]], i))
    elif strategy == "random":
        order = [idx[j] for j in rng.permutation(len(idx))]
    else:
        raise ValueError(f"unknown D_mem strategy {strategy!r}")
    chosen, seen = [], set()
    for i in order:
        if captions[i] not in seen:
            chosen.append(i)
            seen.add(captions[i])
        if len(chosen) == size:
            return chosen
    rest = [i for i in order if i not in set(chosen)]
    return chosen + rest[: size - len(chosen)]


def build_proxy_set(
    split_labels: Sequence[str],
    captions: Sequence[str],
    token_counts: Sequence[int],
    fraction: float,
    dmem_size: int,
    repeats: int,
    strategy: str,
    seed: int = 0,
) -> ProxySet:
    train = [i for i, s in enumerate(split_labels) if s == "train"]
    if not train:
        raise ValueError("the training split is empty")
    dmem = select_dmem(train, captions, token_counts, min(dmem_size, len(train)), strategy, seed)
    rng = np.random.default_rng(seed + 1)
    k = max(1, round(fraction * len(train))) if fraction > 0 else 0
    sampled = sorted(int(i) for i in rng.choice(train, size=k, replace=False)) if k else []
    return ProxySet(sampled + [i for i in dmem for _ in range(repeats)], dmem, repeats)
