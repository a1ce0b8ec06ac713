"""The paper's comparison baselines, each retrained on the full training split like the
chosen mask, then evaluated. A baseline is a method crossed with a mitigation:

    methods      freeze (the pretrained model as it is: the memorisation floor), full (full
                 fine-tuning of the U-Net), any PEFT method on every block (vanilla PEFT:
                 svdiff, difffit, attention, lora; `peft` names the config's method), and
                 memcontrol (the searched pick: its method on its mask)
    mitigations  none, rwa (random word addition to captions, Somepalli et al.), threshold
                 (Wen et al.'s threshold mitigation); both act while training, so freeze
                 under any mitigation is freeze

Each lands in RUN_DIR/baselines/NAME/ (NAME: the method, `-MITIGATION` appended unless none)
with the same layout as `memctl retrain`. A run that trains exactly what another one does (the
pick on every block is vanilla PEFT, freeze is freeze under any mitigation) is run once; its
folder holds only same_as.json naming the other. A baseline already retrained with the same
training settings is not trained again, and one already evaluated with the same evaluation
settings is not evaluated again, so an interrupted `memctl baselines` picks up where it
stopped and changed evaluation settings re-evaluate. Changed training settings are refused
rather than overwriting the finished weights: move RUN_DIR/baselines/NAME aside or use another
run_dir.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from memctl.config import MITIGATIONS, Config
from memctl.peft.registry import METHODS
from memctl.runs.target import RetrainTarget, mask_file

PICK = "memcontrol"
CONFIGURED = "peft"
METHOD_NAMES = (*METHODS, PICK, CONFIGURED)
# The paper's Table 1 and the pick, each under every mitigation.
TABLE1_METHODS = ("freeze", "full", "svdiff", "difffit", "attention", PICK)


@dataclass(frozen=True)
class Baseline:
    method: str
    mitigation: str = "none"

    @property
    def name(self) -> str:
        return self.method if self.mitigation == "none" else f"{self.method}-{self.mitigation}"


def _names(option: str, given: Sequence[str], allowed: Sequence[str]) -> list[str]:
    bad = [n for n in given if n not in allowed]
    if bad or not given:
        raise ValueError(f"{option}: unknown {', '.join(bad) or '(none given)'}; choose from "
                         f"{', '.join(allowed)}")
    return list(dict.fromkeys(given))


def baseline_grid(methods: Sequence[str], mitigations: Sequence[str],
                  configured_method: str) -> list[Baseline]:
    """methods x mitigations in the order given (`peft` resolved to `configured_method`).
    ValueError naming the option and the unknown name."""
    methods = [configured_method if m == CONFIGURED else m
               for m in _names("--methods", methods, METHOD_NAMES)]
    mitigations = _names("--mitigations", mitigations, MITIGATIONS)
    return [Baseline(m, g) for m in dict.fromkeys(methods) for g in mitigations]


def baseline_config(cfg: Config, baseline: Baseline, pick: RetrainTarget | None = None
                    ) -> Config:
    """The config one baseline trains with: `cfg` with its method (and for the pick, its
    space and always-on modules) and mitigation replaced."""
    if baseline.method == PICK:
        if pick is None:
            raise ValueError("the memcontrol baseline needs the searched pick")
        peft = dataclasses.replace(cfg.peft, method=pick.cfg.peft.method,
                                   space=pick.cfg.peft.space, always=list(pick.cfg.peft.always))
    else:
        peft = dataclasses.replace(cfg.peft, method=baseline.method)
    return dataclasses.replace(
        cfg, peft=peft, train=dataclasses.replace(cfg.train, mitigation=baseline.mitigation))


def _weights_key(base: Baseline, run_cfg: Config, bits: Sequence[int] | None) -> tuple:
    """What shapes the trained weights: baselines with one key train the same model. `bits`
    None means every block (vanilla PEFT), as does a pick whose mask is all ones."""
    if base.method == "freeze":
        return ("freeze",)
    mask = "all" if bits is None or all(bits) else tuple(bits)
    return (run_cfg.peft.method, run_cfg.peft.space, tuple(run_cfg.peft.always),
            base.mitigation, mask)


def plan_baselines(cfg: Config, baselines: Sequence[Baseline],
                   pick: RetrainTarget | None = None) -> list[tuple[Baseline, str | None]]:
    """Each baseline with the name of the earlier one that trains the same model (None: it
    is trained itself). Needs no model, so a head can split the grid into jobs."""
    first: dict[tuple, str] = {}
    plan = []
    for base in baselines:
        bits = list(pick.bits) if base.method == PICK and pick else None
        key = _weights_key(base, baseline_config(cfg, base, pick), bits)
        plan.append((base, first.get(key)))
        first.setdefault(key, base.name)
    return plan


def write_same_as(out: Path, same: str) -> None:
    """Marks RUN_DIR/baselines/NAME as the run `same` (trained once, shown as both)."""
    from memctl.data.json_files import write_json
    from memctl.workspace import make_private_dir

    make_private_dir(out)
    write_json(out / "same_as.json", {"same_as": same})


def run_baselines(cfg: Config, baselines: Sequence[Baseline], command: str,
                  on_stage: Callable[[str, str], None] | None = None,
                  evaluate_too: bool = True,
                  on_step: Callable[[str, int, int, float], None] | None = None,
                  pick: RetrainTarget | None = None) -> dict[str, dict]:
    """Retrains (and evaluates) each baseline; returns name -> metrics or evaluation (with
    `same_as` for one trained once under another name). `pick`: the memcontrol baseline's
    mask. `on_stage(name, message)` hears each stage, `on_step(name, step, steps, loss)` each
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
    spaces = {cfg.peft.space} | ({pick.cfg.peft.space} if pick else set())
    layout = {s: (peft.num_bits(unet, s), peft.block_names(unet, s)) for s in spaces}
    del unet
    results: dict[str, dict] = {}
    for base, same in plan_baselines(cfg, baselines, pick):
        run_cfg = baseline_config(cfg, base, pick)
        n_bits, blocks = layout[run_cfg.peft.space]
        bits = list(pick.bits) if base.method == PICK and pick else [1] * n_bits
        out = Path(cfg.run_dir) / "baselines" / base.name
        if same is not None:
            stage(base.name, f"the same run as {same}")
            write_same_as(out, same)
            results[base.name] = {**results[same], "same_as": same}
            continue
        if base.method == "freeze":
            stage(base.name, "exporting the pretrained model")
            results[base.name] = export_frozen(run_cfg, ws.model_dir, ws.reader(), dmem, blocks,
                                               out, command)
        else:
            stage(base.name, "training")
            source = (f"baseline {base.name}: {pick.source}" if base.method == PICK and pick
                      else f"baseline {base.name}")
            results[base.name] = retrain(
                run_cfg, model_dir=str(ws.model_dir), cache_path=str(ws.cache_path), bits=bits,
                dmem_indices=dmem, block_names=blocks, out_dir=out, source=source,
                command=command,
                on_step=(lambda s, n, loss, name=base.name: on_step(name, s, n, loss))
                if on_step else None).metrics
        if not evaluate_too:
            continue
        done = evaluated_with(out, cfg.eval, cfg.search.dmem)
        if done is not None:
            stage(base.name, "already evaluated with these settings")
            results[base.name] = done
        else:
            stage(base.name, "evaluating")
            results[base.name] = evaluate(out, progress=lambda msg, n=base.name: stage(n, msg),
                                          eval_cfg=cfg.eval, dmem=cfg.search.dmem)
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
    write_json(out_dir / "mask.json", mask_file("freeze", cfg.peft.space, [], [0] * len(blocks),
                                                blocks, "baseline freeze", trainable=0,
                                                total=total, percent=0.0))
    dump_config(cfg, out_dir / "config.yaml", command)
    metrics = {"mask": bits, "d_mem": d_mem, "fid_test": fid, "n_fid": n_fid, "trainable": 0,
               "total": total, "train_steps": 0, "source": "baseline freeze"}
    write_json(out_dir / "metrics.json", metrics)
    return metrics
