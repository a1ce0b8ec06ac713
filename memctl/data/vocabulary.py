"""Caption phrases of the built-in dataset and the word list the embedded tokenizer knows."""

from __future__ import annotations

import re

NORMAL = "No acute cardiopulmonary process."

# finding -> report sentences (one is picked per image); {side} is filled in.
FINDING_SENTENCES: dict[str, tuple[str, ...]] = {
    "opacity": (
        "{side} lower lobe opacity concerning for pneumonia.",
        "Patchy opacity in the {side} lung base may reflect atelectasis or infection.",
    ),
    "effusion": (
        "Small {side} pleural effusion.",
        "Moderate {side} pleural effusion with adjacent atelectasis.",
    ),
    "cardiomegaly": (
        "The heart is mildly enlarged.",
        "Moderate cardiomegaly is unchanged.",
    ),
    "device": (
        "Right internal jugular central venous catheter terminates in the mid svc.",
        "Endotracheal tube terminates above the carina.",
    ),
    "nodule": ("A {side} upper lobe nodule is seen.",),
}

EXTRA_WORDS = (
    "a photo of the chest x ray with findings impression frontal lateral view pa ap "
    "there is are no new stable since prior exam and or of in the to is with"
)


def special_tokens() -> tuple[str, str, str, str]:
    """bos, eos, pad, unk."""
    return "<|startoftext|>", "<|endoftext|>", "<|pad|>", "<|unk|>"


def _words(text: str) -> list[str]:
    # Same split as the tokenizer's Whitespace pre-tokenizer: runs of word chars or punctuation.
    return re.findall(r"\w+|[^\w\s]+", text.lower())


def vocabulary() -> list[str]:
    """Every word the built-in captions can contain, sorted (stable token ids)."""
    texts = [NORMAL, EXTRA_WORDS, "left right bilateral"]
    for sentences in FINDING_SENTENCES.values():
        texts.extend(s.format(side=side) for s in sentences for side in ("left", "right"))
    return sorted({w for t in texts for w in _words(t)})
