"""What a retrain trains: a mask with its method and space, the model, cache and D_mem rows.

A target comes from a study's trial (memctl.search.lookup.trial_target) or from a mask file
(`mask_file_target`): the mask.json of a trial folder, a retrain, a baseline or an adapter.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
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


MASK_FILE = "mask.json"


def mask_file(method: str, space: str, always: Sequence[str], bits: Sequence[int],
              block_names: Sequence[str], source: str, **counts: int | float) -> dict:
    """The one mask-file record a trial folder, a retrain and a baseline write (plus the
    trainable/total/percent counts once a model was built): what `retrain --mask` reads."""
    return {"method": method, "space": space, "always": list(always),
            "bits": "".join(map(str, bits)), "block_names": list(block_names), **counts,
            "source": source}


def _read_mask_file(path: Path) -> dict:
    """The record of a mask file, or of the mask.json inside a trial folder, a retrain or
    an adapter directory; bits as "1101" or [1, 1, 0, 1] (an adapter's own layout)."""
    if path.is_dir():
        path = path / MASK_FILE
    if not path.is_file():
        raise UserError(f"{path}: mask file not found")
    try:
        rec = json.loads(path.read_text())
        bits = [int(b) for b in (rec["bits"] if isinstance(rec["bits"], list)
                                 else str(rec["bits"]))]
        method, space = str(rec["method"]), str(rec.get("space", "blocks16"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: not a memctl mask file ({type(err).__name__}: {err})"
                        ) from None
    if not bits or any(b not in (0, 1) for b in bits):
        raise UserError(f"{path}: bits: expected 0s and 1s, got {rec['bits']!r}")
    return {"path": path, "bits": bits, "method": method, "space": space,
            "always": list(rec.get("always", [])),
            "block_names": list(rec.get("block_names", rec.get("blocks", [])))}


def _from_mask_file(path: Path, cfg: Config) -> tuple[list[int], list[str], str, Config]:
    rec = _read_mask_file(path)
    try:  # the config's own checks: a method and space this memctl knows
        peft = dataclasses.replace(cfg.peft, method=rec["method"], space=rec["space"],
                                   always=rec["always"])
    except ValueError as err:
        raise UserError(f"{rec['path']}: {err}") from None
    return (rec["bits"], rec["block_names"], f"mask file {rec['path']}",
            dataclasses.replace(cfg, peft=peft))


def check_structure(path: Path, bits: Sequence[int], blocks: Sequence[str],
                    model_blocks: Sequence[str], space: str) -> None:
    """A mask transfers to any model with the same blocks in its space; anything else is
    refused naming what differs (a file without block names is checked by length only)."""
    if len(bits) != len(model_blocks):
        raise UserError(f"{path}: bits: {len(bits)} bits, but this model has "
                        f"{len(model_blocks)} {space} blocks")
    differ = [f"bit {i}: {a} (mask) vs {b} (model)"
              for i, (a, b) in enumerate(zip(blocks, model_blocks, strict=False)) if a != b]
    if blocks and (differ or len(blocks) != len(model_blocks)):
        shown = "; ".join(differ[:3]) + (f"; {len(differ) - 3} more" if len(differ) > 3 else "")
        raise UserError(f"{path}: block_names: the mask's blocks differ from this model's "
                        f"{space} blocks: {shown or 'another number of blocks'}")


def mask_file_target(path: Path, cfg: Config) -> RetrainTarget:
    """The mask of a mask.json on this config's model and data (prepared if needed); refused
    when the model's blocks are not the ones the mask names."""
    bits, blocks, source, cfg = _from_mask_file(path, cfg)
    from memctl import peft
    from memctl.models.load import load_components
    from memctl.workspace import prepare, proxy_set

    ws = prepare(cfg)
    model_blocks = peft.block_names(load_components(ws.model_dir, text=False).unet,
                                    cfg.peft.space)
    check_structure(path if path.is_file() else path / MASK_FILE, bits, blocks, model_blocks,
                    cfg.peft.space)
    dmem = proxy_set(cfg, ws.reader()).dmem_indices
    return RetrainTarget(cfg, bits, model_blocks, source, str(ws.model_dir),
                         str(ws.cache_path), dmem, f"mask-{path.stem}")
