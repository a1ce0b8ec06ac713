"""The paper's comparison baselines, each retrained on the full training split like the
chosen mask, then evaluated:

    freeze     the pretrained model as it is (no fine-tuning: the memorisation floor)
    full       full fine-tuning of the U-Net
    peft       the PEFT method on every block (vanilla PEFT, no mask search)
    rwa        vanilla PEFT + random word addition to captions (Somepalli et al.)
    threshold  vanilla PEFT + threshold mitigation (Wen et al.)

Each lands in RUN_DIR/baselines/NAME/ with the same layout as `memctl retrain`. A baseline
already retrained with the same training settings is not trained again, and one already
evaluated with the same evaluation settings is not evaluated again, so an interrupted
`memctl baselines` picks up where it stopped and changed evaluation settings re-evaluate.
Changed training settings are refused rather than overwriting the finished weights: move
RUN_DIR/baselines/NAME aside or use another run_dir.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from memctl.config import Config

BASELINES = ("freeze", "full", "peft", "rwa", "threshold")


def baseline_config(cfg: Config, name: str) -> Config:
    """The config one baseline trains with: `cfg` with its method and mitigation replaced."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINES)}")
    method = "full" if name in ("full", "freeze") else cfg.peft.method
    mitigation = name if name in ("rwa", "threshold") else "none"
    return dataclasses.replace(
        cfg, peft=dataclasses.replace(cfg.peft, method=method),
        train=dataclasses.replace(cfg.train, mitigation=mitigation))


def run_baselines(cfg: Config, names: tuple[str, ...], command: str,
                  on_stage: Callable[[str, str], None] | None = None,
                  evaluate_too: bool = True,
                  on_step: Callable[[str, int, int, float], None] | None = None
                  ) -> dict[str, dict]:
    """Retrains (and evaluates) each named baseline; returns name -> metrics or evaluation.
    `on_stage(name, message)` hears each stage, `on_step(name, step, steps, loss)` each
    training step."""
    from memctl import peft
    from memctl.models.load import load_components
    from memctl.runs.evaluate import evaluate, evaluated_with
    from memctl.runs.retrain import retrain
    from memctl.workspace import prepare, proxy_set

    stage = on_stage or (lambda _name, _msg: None)
    ws = prepare(cfg)
    dmem = proxy_set(cfg, ws.reader()).dmem_indices
    unet = load_components(ws.model_dir, text=False).unet
    n_bits = peft.num_bits(unet, cfg.peft.space)
    blocks = peft.block_names(unet, cfg.peft.space)
    del unet
    results: dict[str, dict] = {}
    for name in names:
        out = Path(cfg.run_dir) / "baselines" / name
        if name == "freeze":
            stage(name, "exporting the pretrained model")
            results[name] = export_frozen(baseline_config(cfg, name), ws.model_dir, ws.reader(),
                                          dmem, blocks, out, command)
        else:
            stage(name, "training")
            results[name] = retrain(
                baseline_config(cfg, name), model_dir=str(ws.model_dir),
                cache_path=str(ws.cache_path), bits=[1] * n_bits, dmem_indices=dmem,
                block_names=blocks, out_dir=out, source=f"baseline {name}",
                command=command,
                on_step=(lambda s, n, loss, name=name: on_step(name, s, n, loss))
                if on_step else None).metrics
        if not evaluate_too:
            continue
        done = evaluated_with(out, cfg.eval)
        if done is not None:
            stage(name, "already evaluated with these settings")
            results[name] = done
        else:
            stage(name, "evaluating")
            results[name] = evaluate(out, progress=lambda msg, n=name: stage(n, msg),
                                     eval_cfg=cfg.eval)
    return results


def export_frozen(cfg: Config, model_dir: Path, reader, dmem: list[int], blocks: list[str],
                  out_dir: Path, command: str) -> dict:
    """The `freeze` baseline: the starting model, laid out and scored like a retrain."""
    import shutil

    from memctl.config import dump_config
    from memctl.data.json_files import read_json, write_json
    from memctl.models.load import load_components
    from memctl.runs.scoring import score
    from memctl.workspace import make_private_dir

    if (out_dir / "metrics.json").exists():
        return read_json(out_dir / "metrics.json")
    make_private_dir(out_dir)
    tmp = out_dir / "pipeline.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(model_dir, tmp)
    tmp.replace(out_dir / "pipeline")
    comps = load_components(out_dir / "pipeline", text=False)
    total = sum(p.numel() for p in comps.unet.parameters())
    d_mem, fid, n_fid = score(comps, reader, cfg, dmem, split="test")
    bits = "0" * len(blocks)
    write_json(out_dir / "mask.json", {
        "method": "freeze", "space": cfg.peft.space, "always": [], "bits": bits,
        "block_names": list(blocks), "trainable": 0, "total": total, "percent": 0.0,
        "source": "baseline freeze"})
    dump_config(cfg, out_dir / "config.yaml", command)
    metrics = {"mask": bits, "d_mem": d_mem, "fid_test": fid, "n_fid": n_fid, "trainable": 0,
               "total": total, "train_steps": 0, "source": "baseline freeze"}
    write_json(out_dir / "metrics.json", metrics)
    return metrics
