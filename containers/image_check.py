"""Checks a built image's Python environment: `python image_check.py LOCK [--ops OP ...]`.

Run by Apptainer.def's %test (and usable by hand: `apptainer exec memctl.sif python
/opt/memctl/image_check.py /opt/memctl/requirements.lock`). A script file, not an inline
heredoc: def-file sections keep their indentation, which Python would reject.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import re
import sys
from pathlib import Path

# Modules memctl imports (directly or for the paper's metrics), by import name.
MODULES = (
    "torch", "torchvision", "diffusers", "transformers", "tokenizers", "safetensors",
    "deepspeed", "optuna", "submitit", "psycopg2", "sqlalchemy", "click", "rich", "h5py",
    "numpy", "scipy", "PIL", "yaml", "networkx", "matplotlib", "jinja2", "torchmetrics",
    "peft", "torchxrayvision", "torch_fidelity", "grpc", "google.protobuf", "memctl", "memctl.cli",
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)==(\S+)")


def lock_mismatches(lock: Path) -> list[str]:
    """'name: installed X, locked Y' for every pinned distribution that differs."""
    problems = []
    for line in lock.read_text().splitlines():
        m = _PIN.match(line.strip())
        if not m:
            continue
        try:
            have = md.version(m[1])
        except md.PackageNotFoundError:
            problems.append(f"{m[1]}: not installed, locked {m[2]}")
            continue
        if have != m[2]:
            problems.append(f"{m[1]}: installed {have}, locked {m[2]}")
    return problems


def import_failures(modules: tuple[str, ...] = MODULES) -> list[str]:
    failures = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as err:  # report every broken import, not just the first
            failures.append(f"{name}: {type(err).__name__}: {err}")
    return failures


def missing_ops(ops: list[str]) -> list[str]:
    """DeepSpeed ops (DS_BUILD_<OP> names, e.g. FUSED_ADAM) that were not compiled in."""
    if not ops:
        return []
    from deepspeed.git_version_info import installed_ops

    return [op for op in ops if not installed_ops.get(op.lower())]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--ops", nargs="*", default=[], help="DeepSpeed ops that must be built")
    parser.add_argument("--modules", nargs="*", help="import these instead of the default list")
    args = parser.parse_args(argv)
    modules = tuple(args.modules) if args.modules is not None else MODULES
    problems = lock_mismatches(args.lock) + import_failures(modules)
    if not problems:
        problems += [f"DeepSpeed op {op}: not pre-built" for op in missing_ops(args.ops)]
    for p in problems:
        print(f"image check: {p}", file=sys.stderr)
    if not problems:
        print(f"image check: {args.lock} matches; {len(modules)} modules import; "
              f"DeepSpeed ops {' '.join(args.ops) or '(none requested)'} built")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
