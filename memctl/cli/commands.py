"""Registers every command on the main group: one module per command (or command group),
and gives each its example and, where it takes them, the override syntax in --help."""

from __future__ import annotations

import click

from memctl.cli import (  # noqa: F401
    baselines_cmd,
    cache_cmd,
    data_cmd,
    evaluate_cmd,
    init_cmd,
    main,
    model_cmd,
    peft_cmd,
    report_cmd,
    retrain_cmd,
    search_cmd,
    status_cmd,
    worker_cmd,
)

EXAMPLES: dict[str, str] = {
    "search": "memctl search --executor slurm --partition gpu --trials 200 --workers 8",
    "status": "memctl status --fix      # also fail trials whose worker died",
    "retrain": "memctl retrain --best --evaluate",
    "evaluate": "memctl evaluate memctl-runs/retrain/memctl-trial7 "
                "eval.extraction_generations=500",
    "baselines": "memctl baselines --methods freeze,full,peft --mitigations none,rwa",
    "report": "memctl report --out reports/today",
    "worker": "memctl worker --storage sqlite:///runs/studies.db --study memctl --trials 50",
    "init": "memctl init my-config.yaml && memctl search -c my-config.yaml",
    "cache build": "memctl cache build -c configs/mimic-sd15.yaml",
    "cache info": "memctl cache info --json",
    "data synth": "memctl data synth ./xrays --n 500",
    "model tiny": "memctl model tiny ./tiny && python -c \"from diffusers import "
                  "StableDiffusionPipeline as P; P.from_pretrained('./tiny')\"",
    "peft count": "memctl peft count --method svdiff --mask 1111000000001111",
}

OVERRIDES = ("SECTION.FIELD=VALUE sets one config field on top of the config file, e.g. "
             "train.retrain_steps=200 search.population_size=20; `memctl init` writes every "
             "field with what it means.")


def _leaves(group: click.Group, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found.update(_leaves(command, f"{path} "))
        else:
            found[path] = command
    return found


for _path, _command in _leaves(main).items():
    _parts = []
    if any(p.name == "overrides" for p in _command.params):
        _parts.append(OVERRIDES)
    if _path in EXAMPLES:
        _parts.append(f"\b\nExample:\n  {EXAMPLES[_path]}")
    _command.epilog = "\n\n".join(_parts) or None
