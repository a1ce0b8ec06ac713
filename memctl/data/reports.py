"""Captions from free-text radiology reports: the IMPRESSION section, else FINDINGS.

    caption, why = report_caption(text)   # why: section used, or the reason it is empty

MIMIC-CXR reports are headed sections ("FINDINGS:", "IMPRESSION:") in upper case at the start
of a line; de-identified spans are "___". A report may hold several IMPRESSION-like sections
(addenda): the last non-empty one is the final reading.
"""

from __future__ import annotations

import re

# An upper-case header at the start of a line, ending in a colon: "IMPRESSION:", "FINDINGS:".
_HEADER = re.compile(r"^[ \t]*([A-Z][A-Z /&,()-]*[A-Z)])[ \t]*:", re.MULTILINE)
_PLACEHOLDER = re.compile(r"_{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([.,;:?!)])")
_EMPTY_PARENS = re.compile(r"\(\s*\)")
_REPEATED_PUNCT = re.compile(r"([.,;:])(?:\s*[.,;:])+")


def sections(text: str) -> list[tuple[str, str]]:
    """(HEADER, body) in report order; text before the first header is left out."""
    found = list(_HEADER.finditer(text))
    out = []
    for k, m in enumerate(found):
        end = found[k + 1].start() if k + 1 < len(found) else len(text)
        out.append((" ".join(m.group(1).split()), text[m.end():end]))
    return out


def normalise(text: str) -> str:
    """One line: placeholders removed, whitespace collapsed, stray punctuation tidied."""
    text = _PLACEHOLDER.sub(" ", text)
    text = _EMPTY_PARENS.sub(" ", text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = _REPEATED_PUNCT.sub(r"\1", text)
    return text.strip(" ,;:-")


def _is_impression(header: str) -> bool:
    return "IMPRESSION" in header or header in ("CONCLUSION", "CONCLUSIONS")


def _is_findings(header: str) -> bool:
    return header.startswith("FINDING")


def report_caption(text: str) -> tuple[str, str]:
    """(caption, section name) or ("", why nothing usable was found)."""
    parts = sections(text)
    for name, pick in (("IMPRESSION", _is_impression), ("FINDINGS", _is_findings)):
        bodies = [normalise(body) for header, body in parts if pick(header)]
        bodies = [b for b in bodies if b]
        if bodies:
            return bodies[-1], name
    if not parts:
        return "", "empty caption: report has no sections"
    return "", "empty caption: no IMPRESSION or FINDINGS text in report"
