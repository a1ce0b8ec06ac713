"""Caption phrases of the built-in datasets and the word list the embedded tokenizer knows.

Two domains share one tokenizer: the general-domain scenes the embedded model is pretrained on
(memctl.models.scenes) and the radiograph-like fine-tuning data (memctl.data.synth), so
fine-tuning the embedded model is a domain shift, as SD v1.5 -> MIMIC-CXR is.
"""

from __future__ import annotations

import re

NORMAL = "No acute cardiopulmonary process."

# finding -> report sentences (one is picked per image); {side}, {size}, {zone} are filled in.
FINDING_SENTENCES: dict[str, tuple[str, ...]] = {
    "opacity": (
        "{side} {zone} lobe opacity concerning for pneumonia.",
        "Patchy opacity in the {side} lung base may reflect atelectasis or infection.",
        "There is a {size} {side} {zone} opacity.",
    ),
    "effusion": (
        "{size} {side} pleural effusion.",
        "{size} {side} pleural effusion with adjacent atelectasis.",
    ),
    "cardiomegaly": (
        "The heart is mildly enlarged.",
        "Moderate cardiomegaly is unchanged.",
        "The cardiac silhouette is enlarged.",
    ),
    "device": (
        "Right internal jugular central venous catheter terminates in the mid svc.",
        "Endotracheal tube terminates above the carina.",
        "A {side} chest wall pacemaker is present.",
    ),
    "nodule": (
        "A {size} {side} {zone} lobe nodule is seen.",
        "There is a {side} {zone} nodule measuring {mm} mm.",
    ),
}
SIZES = ("small", "moderate", "large")
ZONES = ("upper", "middle", "lower")
MILLIMETRES = tuple(str(n) for n in range(4, 21))

# Opening and closing phrases vary reports the way real ones vary.
VIEWS = ("", "PA and lateral views of the chest.", "Portable AP view of the chest.",
         "Frontal view of the chest.")
COMPARISONS = ("", "Compared to the prior exam.", "No prior study for comparison.",
               "Unchanged since the prior radiograph.")

# General-domain scenes: the embedded model's pretraining captions.
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "black", "gray",
           "pink", "brown", "cyan")
SHAPES = ("circle", "square", "triangle", "ring", "cross", "bar")
PLACES = ("left", "right", "top", "bottom", "center")
SCENE_WORDS = "a an photo of and on in the at small large black white background striped " \
    "plain gradient textured picture"

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
    texts = [NORMAL, EXTRA_WORDS, "left right bilateral", *VIEWS, *COMPARISONS, *SIZES, *ZONES,
             *MILLIMETRES, *COLOURS, *SHAPES, *PLACES, SCENE_WORDS]
    for sentences in FINDING_SENTENCES.values():
        texts.extend(sentences)
    return sorted({w for t in texts for w in _words(t.replace("{", " ").replace("}", " "))}
                  - {"side", "size", "zone", "mm"} | {"mm"})
