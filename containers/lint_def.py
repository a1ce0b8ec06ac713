"""Project lint for Apptainer.def: what spython's parser does not check.

    python containers/lint_def.py [Apptainer.def]      # exit 1 and one line per problem

Sections are split the way Apptainer splits them (a line whose first word starts with `%`),
so a stray `%...` line inside a script is caught here rather than at build time. Checks:
required sections; no unknown sections (spython ignores them, Apptainer refuses them);
the base image comes from a BASE_TAG build argument; every `{{ ARG }}` is declared in
%arguments and every declared argument is used; no `{{ ARG }}` after a `#` on its line
(Apptainer leaves those unsubstituted); %files sources exist; the runscript is
`exec memctl "$@"`; offline Hugging Face settings; %test runs `memctl --version`;
%post stops on the first error.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

REQUIRED = ("arguments", "files", "post", "environment", "runscript", "test", "labels")
KNOWN = {"help", "setup", "files", "labels", "environment", "pre", "post", "runscript", "test",
         "startscript", "arguments", "appinstall", "applabels", "appfiles", "appenv", "apptest",
         "apphelp", "apprun", "appstart"}
RUNSCRIPT = 'exec memctl "$@"'
ARG_REF = re.compile(r"{{\s*(\w+)\s*}}")
# Apptainer's own test for "this {{ X }} is in a comment" (internal/pkg/build/args).
_COMMENTED = re.compile(r"\s*[#][^!]\s*.*")


@dataclass
class DefFile:
    header: dict[str, str]
    sections: dict[str, str] = field(default_factory=dict)
    """Section name -> body (all bodies of a repeated section joined)."""
    order: list[str] = field(default_factory=list)


def parse(text: str) -> DefFile:
    header_lines: list[str] = []
    sections: dict[str, str] = {}
    order: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        words = line.split()
        if words and words[0].startswith("%"):
            current = words[0][1:].lower()
            order.append(current)
            sections.setdefault(current, "")
            continue
        if current is None:
            header_lines.append(line)
        else:
            sections[current] += line + "\n"
    header = {}
    for line in header_lines:
        line = line.strip()
        if not line or line.startswith("#") or ":" not in line:
            continue
        key, value = line.split("#", 1)[0].split(":", 1)
        header[key.strip().lower()] = value.strip()
    return DefFile(header, sections, order)


def arguments(body: str) -> dict[str, str]:
    out = {}
    for line in body.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def _script_lines(body: str) -> list[str]:
    return [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def lint(text: str, root: Path | None = None) -> list[str]:
    """Problems found in a def file's text; `root` resolves %files sources."""
    d = parse(text)
    problems = [f"missing section %{s}" for s in REQUIRED if s not in d.sections]
    problems += [f"unknown section %{s}" for s in dict.fromkeys(d.order) if s not in KNOWN]

    if d.header.get("bootstrap") != "docker":
        problems.append("header: Bootstrap must be docker (the CUDA PyTorch base image)")
    base = d.header.get("from", "")
    if not re.search(r"{{\s*BASE_TAG\s*}}", base):
        problems.append(f"header: From must take its tag from {{{{ BASE_TAG }}}}, got {base!r}")

    args = arguments(d.sections.get("arguments", ""))
    if "BASE_TAG" not in args:
        problems.append("%arguments: BASE_TAG has no default")
    used: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        for m in ARG_REF.finditer(line):
            if line.lstrip().startswith("#"):
                continue  # documentation in comments
            if _COMMENTED.search(line[: m.start()]):
                problems.append(f"line {n}: {{{{ {m[1]} }}}} follows a '#': Apptainer would "
                                f"not substitute it")
            used.add(m[1])
            if m[1] not in args:
                problems.append(f"line {n}: {{{{ {m[1]} }}}} is not declared in %arguments")
    problems += [f"%arguments: {a} is declared but never used" for a in args if a not in used]

    for line in _script_lines(d.sections.get("files", "")):
        src = line.split()[0].strip("\"'")
        if root is not None and not (root / src).exists():
            problems.append(f"%files: source {src} does not exist")

    run = _script_lines(d.sections.get("runscript", ""))
    if run != [RUNSCRIPT]:
        problems.append(f"%runscript must be exactly `{RUNSCRIPT}`, got {run}")

    env = d.sections.get("environment", "")
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if not re.search(rf"^\s*export\s+{var}=1\s*$", env, re.M):
            problems.append(f"%environment: must export {var}=1 (compute nodes are offline)")
    for var in ("HF_HOME", "TORCH_EXTENSIONS_DIR", "MEMCTL_CACHE"):
        if not re.search(rf"^\s*export\s+{var}=", env, re.M):
            problems.append(f"%environment: must set {var} (a writable, bind-mounted cache)")

    if "memctl --version" not in d.sections.get("test", ""):
        problems.append("%test: must run `memctl --version`")
    post = _script_lines(d.sections.get("post", ""))
    if not post or not re.match(r"set -\w*e", post[0]):
        problems.append("%post: must start with `set -e...` so a failed step fails the build")

    labels = d.sections.get("labels", "")
    for key in ("version", "source"):
        if not re.search(rf"^\s*\S*{key}\s+\S", labels, re.M):
            problems.append(f"%labels: no {key} label")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "Apptainer.def")
    problems = lint(path.read_text(), root=path.resolve().parent)
    for p in problems:
        print(f"{path}: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
