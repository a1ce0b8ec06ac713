"""Checkpoints in a run folder: step-NNNNNNNN/ directories, written atomically.

Each holds the engine's state (trained tensors, optimizer, scheduler; never frozen weights),
one `loop-rank{r}.pt` per rank (step, every RNG state, sampler position, mitigation state,
losses so far) and `meta.json`, written last. A checkpoint is built under `.tmp-...` and
renamed into place, so a kill at any moment leaves either the old set or the new one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import torch

from memctl.errors import UserError
from memctl.train import distributed
from memctl.train.distributed import Rank
from memctl.train.engine import Engine

log = logging.getLogger(__name__)

PREFIX = "step-"
META = "meta.json"


def _step_of(path: Path) -> int:
    return int(path.name[len(PREFIX):])


class Checkpointer:
    def __init__(self, root: Path, keep: int, rank: Rank, fingerprint: str) -> None:
        self.root, self.keep, self.rank, self.fingerprint = root, keep, rank, fingerprint
        if rank.is_main:
            root.mkdir(parents=True, exist_ok=True)
            os.chmod(root, 0o700)
            for stale in root.glob(f".tmp-{PREFIX}*"):  # left by a kill mid-save
                shutil.rmtree(stale, ignore_errors=True)
        distributed.barrier()

    def complete(self) -> list[Path]:
        """Finished checkpoints, newest first."""
        found = [p for p in self.root.glob(f"{PREFIX}*")
                 if p.is_dir() and p.name[len(PREFIX):].isdigit() and (p / META).is_file()]
        return sorted(found, key=_step_of, reverse=True)

    def save(self, step: int, engine: Engine, loop_state: dict) -> Path:
        name = f"{PREFIX}{step:08d}"
        tmp, final = self.root / f".tmp-{name}", self.root / name
        if self.rank.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o700)
        distributed.barrier()
        torch.save(loop_state, tmp / f"loop-rank{self.rank.rank}.pt")
        engine.save(tmp)
        distributed.barrier()
        if self.rank.is_main:
            meta = {"step": step, "world_size": self.rank.world_size,
                    "fingerprint": self.fingerprint, "time": time.time()}
            (tmp / META).write_text(json.dumps(meta))
            for f in tmp.rglob("*"):
                if f.is_file():
                    os.chmod(f, 0o600)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            for old in self.complete()[self.keep:]:
                shutil.rmtree(old, ignore_errors=True)
        distributed.barrier()
        return final

    def restore(self, engine: Engine) -> dict | None:
        """Loads the newest checkpoint that loads (an older one if the newest is damaged,
        in a lone process) and returns this rank's loop state; None when there is none."""
        for path in self.complete():
            meta = json.loads((path / META).read_text())
            if meta.get("fingerprint") != self.fingerprint:
                raise UserError(f"{path}: checkpoint of a different training setup (config, "
                                "trained tensors or world size changed); use a fresh folder")
            try:
                engine.load(path)
                state = torch.load(path / f"loop-rank{self.rank.rank}.pt", map_location="cpu",
                                   weights_only=True)
            except Exception as err:  # torn or damaged files fail in many ways
                if self.rank.world_size > 1:
                    raise
                log.warning("%s: cannot load (%s); trying an older checkpoint", path, err)
                continue
            log.info("resuming from %s (step %d)", path, meta["step"])
            return state
        return None
