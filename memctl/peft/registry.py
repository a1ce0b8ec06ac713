"""The names of PEFT methods and search spaces: the one list config, CLI help and peft share.

METHODS maps each method name to the module that defines it (`METHOD = <Method subclass>`),
imported only when the method is used, so loading a config imports no torch. A new method is
one module under peft/methods/ plus its line here.
"""

from __future__ import annotations

import importlib

METHODS: dict[str, str] = {
    "attention": "memctl.peft.methods.attention",
    "svdiff": "memctl.peft.methods.svdiff",
    "difffit": "memctl.peft.methods.difffit",
    "lora": "memctl.peft.methods.lora",
    "full": "memctl.peft.methods.full",
    "freeze": "memctl.peft.methods.freeze",
}

# How bits map onto blocks; each is a layout function in peft/_spaces.py.
SPACES: tuple[str, ...] = ("blocks16", "attn32", "paper13")


def method_class(name: str) -> type:
    """The peft._method.Method subclass registered as `name` (KeyError when there is none)."""
    return importlib.import_module(METHODS[name]).METHOD
