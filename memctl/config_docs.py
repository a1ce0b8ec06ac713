"""Field documentation of memctl.config: the string literal after each dataclass field.

It becomes the comments of a starter config (`memctl init`) and command-line help.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import textwrap
from dataclasses import fields
from pathlib import Path
from typing import Any

import yaml


@functools.cache
def field_docs() -> dict[tuple[str, str], str]:
    """{(class name, field): docstring} for the dataclasses of memctl.config. The string
    literal after a field is dropped at run time, so it is read from config.py's source;
    empty when the source is not shipped (the docs are a nicety, never needed to run)."""
    try:
        tree = ast.parse(Path(__file__).with_name("config.py").read_text())
    except OSError:
        return {}
    docs: dict[tuple[str, str], str] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            docs.update(_class_field_docs(node))
    return docs


def _class_field_docs(cls: ast.ClassDef) -> dict[tuple[str, str], str]:
    """Each annotated field directly followed by a string literal."""
    docs = {}
    for stmt, after in itertools.pairwise(cls.body):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            docs[(cls.name, stmt.target.id)] = inspect.cleandoc(after.value.value)
    return docs


def _comment(doc: str, indent: str) -> str:
    return "".join(f"{indent}# {line}".rstrip() + "\n" for line in doc.splitlines())


def _commented_fields(obj: Any, indent: str) -> str:
    """obj's fields as YAML at `indent`, each headed by its docstring."""
    docs = field_docs()
    out = []
    for f in fields(obj):
        value = getattr(obj, f.name)
        out.append(_comment(docs.get((type(obj).__name__, f.name), ""), indent))
        if dataclasses.is_dataclass(value):  # a section: a blank line sets it apart
            out[-1] = "\n" + out[-1]
            out.append(f"{indent}{f.name}:\n" + _commented_fields(value, indent + "  "))
        else:
            out.append(textwrap.indent(yaml.safe_dump({f.name: value}, sort_keys=False), indent))
    return "".join(out)


def commented_yaml(cfg: Any) -> str:
    """cfg (a memctl.config.Config) as YAML with each field's docstring as `#` lines above
    it; loads back to cfg."""
    return _commented_fields(cfg, "")
