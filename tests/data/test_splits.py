from collections import Counter

import pytest

from memctl.data.splits import (
    assign_splits,
    build_proxy_set,
    match_ids,
    read_id_list,
    select_dmem,
    splits_record,
    subject_splits,
)

SUBJECTS = [f"p{i % 97:03d}" for i in range(600)]  # 97 subjects, several images each


def by_subject(subjects, labels):
    seen: dict[str, set[str]] = {}
    for s, label in zip(subjects, labels, strict=True):
        seen.setdefault(s, set()).add(label)
    return seen


def test_subject_disjoint_fractions_and_stable():
    labels = assign_splits(SUBJECTS, 0.15, 0.15, seed=3)
    assert all(len(v) == 1 for v in by_subject(SUBJECTS, labels).values())
    subjects = {s: next(iter(v)) for s, v in by_subject(SUBJECTS, labels).items()}
    counts = Counter(subjects.values())
    assert set(counts) == {"train", "val", "test"} and counts["train"] > 50
    assert assign_splits(SUBJECTS, 0.15, 0.15, seed=3) == labels  # same run, same split
    assert assign_splits(SUBJECTS, 0.15, 0.15, seed=4) != labels
    # Adding images (and subjects) moves no existing subject.
    more = SUBJECTS + [f"q{i}" for i in range(50)]
    assert assign_splits(more, 0.15, 0.15, seed=3)[: len(SUBJECTS)] == labels


def test_official_split_wins_for_the_whole_subject():
    subjects = ["a", "a", "b", "b", "c", "d"]
    official = ["test", "", "train", "validate", "", "train"]
    split, how = subject_splits(subjects, 0.0, 0.0, official=official)
    assert split == {"a": "test", "b": "val", "c": "train", "d": "train"}
    assert how == {"a": "official", "b": "conflict", "c": "hash", "d": "official"}
    labels = assign_splits(subjects, 0.0, 0.0, official=official)
    assert labels == ["test", "test", "val", "val", "train", "train"]
    # Ignoring the official split: everything drawn (here: all train).
    assert set(assign_splits(subjects, 0.0, 0.0, official=None)) == {"train"}


def test_splits_record():
    labels = assign_splits(SUBJECTS, 0.2, 0.1, seed=1)
    rec = splits_record(SUBJECTS, labels, 0.2, 0.1, 1)
    assert rec["seed"] == 1 and rec["val_fraction"] == 0.2 and rec["decided_by"] == {"hash": 97}
    assert sum(c["subjects"] for c in rec["counts"].values()) == 97
    assert sum(c["images"] for c in rec["counts"].values()) == 600
    assert rec["subjects"]["p005"] == labels[5]


CAPTIONS = ["normal", "normal", "normal", "a long caption here", "effusion", "effusion", "x"]
TOKENS = [3, 3, 3, 6, 3, 3, 1]


def test_dmem_strategies():
    train = list(range(7))
    assert select_dmem(train, CAPTIONS, TOKENS, 2, "longest") == [3, 0]
    assert select_dmem(train, CAPTIONS, TOKENS, 2, "frequent") == [0, 4]
    rand = select_dmem(train, CAPTIONS, TOKENS, 3, "random", seed=5)
    assert rand == select_dmem(train, CAPTIONS, TOKENS, 3, "random", seed=5)
    assert len({CAPTIONS[i] for i in rand}) == 3  # distinct captions first
    # More than the distinct captions: filled with repeats, no index twice.
    every = select_dmem(train, CAPTIONS, TOKENS, 6, "frequent")
    assert len(every) == len(set(every)) == 6
    with pytest.raises(ValueError):
        select_dmem(train, CAPTIONS, TOKENS, 2, "best")


def test_dmem_ids_match_paths_suffixes_and_stems():
    paths = ["/d/files/p10/p1/s5/abc-1.jpg", "/d/files/p10/p1/s5/abc-2.jpg", "/x/img/abc-1.jpg"]
    text = "# D_mem\nabc-2\n\np1/s5/abc-1.jpg, extra column\n/x/img/abc-1.jpg\nnope\n"
    wanted = read_id_list(text)
    assert wanted == ["abc-2", "p1/s5/abc-1.jpg", "/x/img/abc-1.jpg", "nope"]
    rows, missing = match_ids(wanted, paths, [0, 1, 2])
    assert rows == [1, 0, 2] and missing == ["nope"]
    rows, missing = match_ids(["abc-1"], paths, [2, 0])
    assert rows == [0]  # a stem shared by folders: the lowest row
    assert match_ids(["abc-2"], paths, [0, 2]) == ([], ["abc-2"])  # not a candidate


def test_proxy_set_repeats_dmem_and_checks_file_rows():
    labels = ["train"] * 5 + ["val", "skipped"]
    proxy = build_proxy_set(labels, CAPTIONS, TOKENS, 0.4, 2, 3, "longest", seed=0)
    assert proxy.dmem_indices == [3, 0] and proxy.repeats == 3
    assert Counter(proxy.train_indices)[3] >= 3 and len(proxy.train_indices) == 2 + 6
    fixed = build_proxy_set(labels, CAPTIONS, TOKENS, 0.0, 2, 2, "file", dmem=[4, 1])
    assert fixed.train_indices == [4, 4, 1, 1] and fixed.dmem_indices == [4, 1]
    with pytest.raises(ValueError, match="not usable training"):
        build_proxy_set(labels, CAPTIONS, TOKENS, 0.0, 2, 2, "file", dmem=[5])
    with pytest.raises(ValueError, match="training split is empty"):
        build_proxy_set(["val"] * 7, CAPTIONS, TOKENS, 0.1, 2, 2, "random")
