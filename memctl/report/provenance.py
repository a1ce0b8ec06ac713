"""What produced a report: package versions, memctl's code version, the study and its store."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
from pathlib import Path

import yaml

from memctl import __version__
from memctl.report.collect import StudySnapshot
from memctl.search.study import mask_url

PACKAGES = ("torch", "diffusers", "transformers", "optuna", "deepspeed", "submitit")


def code_version() -> str:
    """`git describe` of a source checkout (with -dirty for local edits), else the installed
    package's version."""
    root = Path(__file__).resolve().parents[2]
    if (root / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                                 capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                return f"{__version__} ({out.stdout.strip()})"
        except (OSError, subprocess.SubprocessError):
            pass
    return __version__


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def masked(value: object) -> object:
    """The config with any storage URL's password hidden."""
    if isinstance(value, dict):
        return {k: mask_url(v) if k == "storage" and isinstance(v, str) else masked(v)
                for k, v in value.items()}
    return value


def provenance(snap: StudySnapshot) -> dict:
    return {
        "memctl": code_version(),
        "study created by memctl": snap.memctl_version or "unknown",
        "python": platform.python_version(),
        **{name: _version(name) for name in PACKAGES},
        "studies": ", ".join(snap.studies or [snap.name]),
        "storage": mask_url(snap.storage),
    }


def config_yaml(snap: StudySnapshot) -> str:
    """The config the study was created with, as YAML."""
    return yaml.safe_dump(masked(snap.config), sort_keys=False) if snap.config else ""
