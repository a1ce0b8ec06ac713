"""What a retrain trains: a mask with its method and space, the model, cache and D_mem rows.

A target comes from a study's trial (memctl.search.lookup.trial_target) or from a
mask.json written by an earlier retrain (`mask_file_target`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from memctl.config import Config
from memctl.errors import UserError


@dataclass
class RetrainTarget:
    cfg: Config
    bits: list[int]
    block_names: list[str]
    source: str
    """Where the mask came from, as mask.json and metrics.json record it."""
    model_dir: str
    cache_path: str
    dmem_indices: list[int]
    name: str
    """Default run directory name under RUN_DIR/retrain/."""

    def retrain_args(self) -> dict:
        """Keyword arguments of memctl.runs.retrain.retrain (besides cfg and out_dir)."""
        return dict(model_dir=self.model_dir, cache_path=self.cache_path, bits=self.bits,
                    dmem_indices=self.dmem_indices, block_names=self.block_names,
                    source=self.source)


def _from_mask_file(path: Path, cfg: Config) -> tuple[list[int], list[str], str, Config]:
    if not path.is_file():
        raise UserError(f"{path}: mask file not found")
    try:
        rec = json.loads(path.read_text())
        bits = [int(b) for b in str(rec["bits"])]
        method, space = rec["method"], rec["space"]
    except (ValueError, KeyError, TypeError) as err:
        raise UserError(f"{path}: not a memctl mask file ({err})") from None
    peft = dataclasses.replace(cfg.peft, method=method, space=space,
                               always=list(rec.get("always", [])))
    return bits, list(rec.get("block_names", [])), f"mask file {path}", dataclasses.replace(
        cfg, peft=peft)


def mask_file_target(path: Path, cfg: Config) -> RetrainTarget:
    """The mask of a mask.json on this config's model and data (prepared if needed)."""
    bits, blocks, source, cfg = _from_mask_file(path, cfg)
    from memctl.workspace import prepare, proxy_set

    ws = prepare(cfg)
    dmem = proxy_set(cfg, ws.reader()).dmem_indices
    return RetrainTarget(cfg, bits, blocks, source, str(ws.model_dir), str(ws.cache_path),
                         dmem, f"mask-{path.stem}")
