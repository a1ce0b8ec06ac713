"""Where DeepSpeed's JIT-compiled ops live, so one build serves every later run.

DeepSpeed compiles its CPU communication op (and any fused optimizer) on first use, which
takes minutes on a small machine; torch caches the result under $TORCH_EXTENSIONS_DIR.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "TORCH_EXTENSIONS_DIR"


def source_checkout() -> Path | None:
    """The repository root when memctl runs from a source checkout, else None."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "pyproject.toml").is_file() and (root / ".git").exists() else None


def extensions_dir() -> Path | None:
    """$TORCH_EXTENSIONS_DIR, else <repo>/.torch_extensions in a checkout, else torch's default."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    root = source_checkout()
    return root / ".torch_extensions" if root else None


def use_extensions_dir() -> Path | None:
    """Exports the chosen directory (before DeepSpeed builds anything) and returns it."""
    path = extensions_dir()
    if path is not None:
        path.mkdir(parents=True, exist_ok=True)
        os.environ[ENV] = str(path)
    return path
