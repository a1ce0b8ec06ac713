"""Subject-level train/val/test splits and the search's proxy set (fraction of train + D_mem)."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DMEM_STRATEGIES = ("longest", "random", "frequent", "file")
_OFFICIAL = {"train": "train", "validate": "val", "val": "val", "test": "test"}
# When a subject's images carry different official labels, the most held-out one wins, so no
# image of a test subject is ever trained on.
_PRECEDENCE = {"test": 0, "val": 1, "train": 2}


def _unit_hash(seed: int, key: str) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def subject_splits(
    subject_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    official: Sequence[str] | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """(subject -> split, subject -> how it was decided: "official", "hash" or "conflict").

    A subject's split comes from a seeded hash of its id, so the assignment is stable across
    runs and does not move when images are added. An official label on any of the subject's
    images wins for all of them.
    """
    labels: dict[str, set[str]] = {}
    for i, subject in enumerate(subject_ids):
        known = labels.setdefault(subject, set())
        if official is not None and official[i] in _OFFICIAL:
            known.add(_OFFICIAL[official[i]])
    split, how = {}, {}
    for subject, known in labels.items():
        if known:
            split[subject] = min(known, key=_PRECEDENCE.__getitem__)
            how[subject] = "official" if len(known) == 1 else "conflict"
            continue
        u = _unit_hash(seed, subject)
        split[subject] = ("test" if u < test_fraction
                          else "val" if u < test_fraction + val_fraction else "train")
        how[subject] = "hash"
    conflicts = sum(h == "conflict" for h in how.values())
    if conflicts:
        log.warning("%d subject(s) have images in several official splits; each was put in its "
                    "most held-out one", conflicts)
    return split, how


def assign_splits(
    subject_ids: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int = 0,
    official: Sequence[str] | None = None,
) -> list[str]:
    """Split label per sample; all images of a subject share one split (see subject_splits)."""
    split, _ = subject_splits(subject_ids, val_fraction, test_fraction, seed, official)
    return [split[s] for s in subject_ids]


def splits_record(
    subject_ids: Sequence[str],
    labels: Sequence[str],
    val_fraction: float,
    test_fraction: float,
    seed: int,
    official: Sequence[str] | None = None,
) -> dict:
    """What splits.json holds: settings, counts and subject -> split."""
    _, how = subject_splits(subject_ids, val_fraction, test_fraction, seed, official)
    subjects = dict(zip(subject_ids, labels, strict=True))
    per_subject = Counter(subjects.values())
    per_image = Counter(labels)
    return {
        "seed": seed, "val_fraction": val_fraction, "test_fraction": test_fraction,
        "official": official is not None,
        "decided_by": dict(Counter(how.values())),
        "counts": {s: {"subjects": per_subject.get(s, 0), "images": per_image.get(s, 0)}
                   for s in SPLITS},
        "subjects": dict(sorted(subjects.items())),
    }


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
    """Picks D_mem from train: distinct captions where possible, deterministic per seed.

    longest: most caption tokens; frequent: the most shared captions (one image each);
    random: uniform. Ties go to the lower index.
    """
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
    # Fewer distinct captions than `size`: fill with repeated captions, in the same order.
    taken = set(chosen)
    return chosen + [i for i in order if i not in taken][: size - len(chosen)]


def read_id_list(text: str) -> list[str]:
    """One id or path per line; blank lines and # comments ignored. A CSV's first column."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            out.append(line.split(",", 1)[0].strip())
    return out


def match_ids(wanted: Sequence[str], paths: Sequence[str],
              candidates: Sequence[int]) -> tuple[list[int], list[str]]:
    """Rows among `candidates` named by `wanted`: a full path, a trailing part of one, or a
    file stem (MIMIC's dicom_id). Returns (rows in `wanted` order, ids that matched nothing).
    An id that matches several rows (a stem shared by folders) takes the lowest row.
    """
    order = sorted(candidates, reverse=True)  # lower rows written last: the lowest wins
    parts = {i: PurePath(paths[i]).parts for i in order}
    tails: dict[int, dict[tuple[str, ...], int]] = {}  # n trailing parts -> row
    by_key: dict[str, int] = {}
    for i in order:
        by_key[paths[i]] = by_key[PurePath(paths[i]).stem] = by_key[parts[i][-1]] = i
    rows, missing = [], []
    for w in wanted:
        row = by_key.get(w)
        if row is None:  # a relative path: match on trailing parts
            tail = PurePath(w).parts
            if len(tail) not in tails:
                tails[len(tail)] = {parts[i][-len(tail):]: i for i in order}
            row = tails[len(tail)].get(tail)
        if row is None:
            missing.append(w)
        elif row not in rows:
            rows.append(row)
    return rows, missing


def build_proxy_set(
    split_labels: Sequence[str],
    captions: Sequence[str],
    token_counts: Sequence[int],
    fraction: float,
    dmem_size: int,
    repeats: int,
    strategy: str,
    seed: int = 0,
    dmem: Sequence[int] | None = None,
) -> ProxySet:
    """`dmem` given (strategy "file"): those rows are D_mem; they must be in train."""
    train = [i for i, s in enumerate(split_labels) if s == "train"]
    if not train:
        raise ValueError("the training split is empty")
    if dmem is None:
        dmem = select_dmem(train, captions, token_counts, min(dmem_size, len(train)), strategy,
                           seed)
    else:
        outside = [i for i in dmem if split_labels[i] != "train"]
        if outside:
            raise ValueError(f"{len(outside)} D_mem row(s) are not usable training images "
                             f"(e.g. row {outside[0]}: {split_labels[outside[0]]})")
        dmem = list(dmem)
    rng = np.random.default_rng(seed + 1)
    k = max(1, round(fraction * len(train))) if fraction > 0 else 0
    sampled = sorted(int(i) for i in rng.choice(train, size=k, replace=False)) if k else []
    return ProxySet(sampled + [i for i in dmem for _ in range(repeats)], list(dmem), repeats)
