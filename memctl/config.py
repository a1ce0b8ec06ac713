"""Configuration: dataclasses are the schema, YAML files and dotted overrides fill them.

    cfg = load_config("configs/mimic-sd15.yaml", overrides=["train.lr=1e-4"])

Every field is type-checked and validated at load; errors raise UserError naming the file
and the dotted field, e.g. `configs/x.yaml: train.lr: must be > 0, got -1.0`. The defaults
are the embedded tiny setup (configs/tiny.yaml spells them out).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from memctl.config_checks import (
    _apply_override,
    _build,
    _check,
    _choice,
    _Invalid,
    _non_negative,
    _positive,
)
from memctl.config_docs import commented_yaml
from memctl.errors import UserError
from memctl.peft import registry as peft_registry

# Choices of peft.method, peft.space, search.executor and train.mitigation (and the CLI's):
# the registries' names. launch/ and train/ read this module, so their names are listed here
# and tests/test_registries.py checks them against launch.backends.BACKENDS and
# train.mitigations.MITIGATIONS.
METHODS = tuple(peft_registry.METHODS)
SPACES = peft_registry.SPACES
SEARCHABLE = tuple(m for m in METHODS if m != "freeze")
EXECUTORS = ("local", "debug", "slurm")
MITIGATIONS = ("none", "rwa", "threshold")


@dataclass
class ModelConfig:
    path: str = ""
    """Local diffusers pipeline directory. Empty: the embedded tiny model, built on first use."""
    resolution: int = 32
    """Image side in pixels; images are center-cropped and resized to it when caching."""

    def __post_init__(self) -> None:
        _positive(self, "resolution")
        _check(self.resolution % 8 == 0, "resolution",
               f"must be a multiple of 8, got {self.resolution}")


@dataclass
class DataConfig:
    source: str = "synth"
    """synth (built-in), csv (manifest with path, caption[, subject_id, split]), mimic
    (MIMIC-CXR-JPG with reports), imagefolder (one folder per class)."""
    path: str = ""
    """csv: the manifest; mimic: the MIMIC-CXR-JPG root; imagefolder: the root folder;
    synth: the folder to write to (default under run_dir)."""
    reports_path: str = ""
    """mimic: folder (holding files/pXX/...) or mimic-cxr-reports.zip; default: data.path."""
    views: list[str] = field(default_factory=lambda: ["PA", "AP"])
    """mimic: ViewPosition values to keep (frontal by default); empty: every view."""
    caption_template: str = "a photo of a {class}"
    """imagefolder: caption of each image; {class} is its class name."""
    class_names: str = ""
    """imagefolder: folder name -> class name mapping (JSON, CSV/TSV or "id name" lines)."""
    official_split: bool = True
    """Use the source's official split (MIMIC split file, imagefolder train/val/test folders)
    where it has one; false: draw every subject's split from split_seed."""
    synth_n: int = 240
    """Number of images the built-in dataset holds."""
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_seed: int = 0
    proxy_fraction: float = 0.2
    """Fraction of train in the search's proxy set (paper: 0.01)."""
    dmem_size: int = 4
    """Number of image-caption pairs in D_mem (paper: 100)."""
    dmem_repeats: int = 50
    """How often each D_mem pair is repeated in the proxy set (paper: 50)."""
    retrain_dmem_repeats: int = 200
    """Extra copies of each D_mem pair in the retrain and baseline training set (the training
    split holds one already); 0: the split as it is. Real data such as MIMIC-CXR carries its
    own duplicates; the embedded testbed sets this to stand in for them (200: 4 pairs make
    82% of the 971 training rows; full fine-tuning then replays 4, 1 and 3 of 4 in 600 steps
    on seeds 0, 1, 2)."""
    dmem_strategy: str = "longest"
    """longest (most caption tokens), random, frequent (most shared caption), or file."""
    dmem_file: str = ""
    """dmem_strategy file: image ids, paths or file stems (MIMIC dicom_id), one per line."""
    cache_batch_size: int = 32
    cache_workers: int = 0
    """Threads decoding images while the cache builds; 0: min(8, CPU count)."""

    def __post_init__(self) -> None:
        from memctl.data.sources import SOURCES

        _choice(self, "source", tuple(SOURCES))
        _check(self.source == "synth" or bool(self.path), "path",
               f"required when source is {self.source}")
        for name in ("val_fraction", "test_fraction", "proxy_fraction"):
            value = getattr(self, name)
            _check(0 <= value < 1, name, f"must be in [0, 1), got {value!r}")
        _check(self.val_fraction + self.test_fraction < 1, "val_fraction",
               "val_fraction + test_fraction must be < 1")
        _positive(self, "synth_n", "dmem_size", "dmem_repeats", "cache_batch_size")
        _non_negative(self, "cache_workers", "retrain_dmem_repeats")
        _choice(self, "dmem_strategy", ("longest", "random", "frequent", "file"))
        _check(self.dmem_strategy != "file" or bool(self.dmem_file), "dmem_file",
               "required when dmem_strategy is file")
        try:
            self.caption_template.format(**{"class": "x"})
        except (KeyError, IndexError, ValueError) as err:
            raise _Invalid("caption_template", f"must use only {{class}}, got "
                                               f"{self.caption_template!r} ({err!r})") from None


@dataclass
class PeftConfig:
    method: str = "attention"
    space: str = "blocks16"
    always: list[str] = field(default_factory=list)
    """Named parameter groups outside the masked blocks that always train."""

    def __post_init__(self) -> None:
        _choice(self, "method", METHODS)
        _choice(self, "space", SPACES)


@dataclass
class TrainConfig:
    steps: int = 300
    """Optimizer steps of each search trial (paper: 3000). A trial must train long enough to
    start memorising, or d_mem ranks nothing: on the testbed after 40 steps every attention
    mask's d_mem sat at or below the frozen model's (0.82-1.05 against 1.02) and all-ones
    scored lowest; after 300 (with data.dmem_repeats=50) they spread over 1.36-2.08 with
    all-ones highest."""
    retrain_steps: int = 600
    """Optimizer steps when retraining the chosen mask on the full training split (the
    testbed's full fine-tuning on seed 0 replays 3 of 4 D_mem images after 450 steps, 4 of 4
    after 600)."""
    batch_size: int = 8
    method_lr: dict[str, float] = field(default_factory=dict)
    """Learning rate of a PEFT method where it differs from lr, e.g. {svdiff: 1.0e-4}: a
    global search and the baselines train several methods."""
    lr: float = 1e-3
    """The embedded model is small: 1e-3 moves it towards replaying duplicated images within
    a few hundred steps (1e-4 barely does); SD v1.5 configs set their own."""
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_schedule: str = "constant"
    grad_clip: float = 1.0
    seed: int = 0
    engine: str = "torch"
    """torch (plain loop) or deepspeed."""
    log_every: int = 10
    precision: str = "fp32"
    """fp32, or bf16: frozen weights and activations in bf16, trainable weights fp32 masters."""
    grad_accum: int = 1
    """Micro-batches of batch_size (per rank) accumulated into one optimizer step."""
    gradient_checkpointing: bool = False
    zero_stage: int = 0
    """DeepSpeed ZeRO stage 0, 1 or 2 (engine deepspeed)."""
    deepspeed_config: str = ""
    """DeepSpeed JSON (path, or a name in configs/deepspeed/) merged over the generated one."""
    checkpoint_every: int = 0
    """Optimizer steps between checkpoints in the run folder; 0: none (no resume)."""
    keep_checkpoints: int = 2
    mitigation: str = "none"
    """none, rwa (random word augmentation of captions) or threshold (drop high-d_mem samples)."""
    rwa_prob: float = 0.1
    """rwa: probability that an access to a caption is augmented."""
    rwa_tokens: int = 2
    """rwa: random vocabulary tokens inserted into an augmented caption."""
    threshold: float = 0.0
    """threshold: fixed drop threshold on ||eps(x_t, c) - eps(x_t, empty)||; 0: calibrate."""
    threshold_quantile: float = 0.9
    """threshold: when calibrating, drop samples at or above this quantile of the first steps."""
    threshold_calibration_steps: int = 4

    def for_method(self, method: str) -> TrainConfig:
        """These settings with lr replaced by method_lr's entry for `method`, if any."""
        lr = self.method_lr.get(method)
        return self if lr is None else dataclasses.replace(self, lr=lr)

    def __post_init__(self) -> None:
        _positive(self, "steps", "retrain_steps", "batch_size", "lr", "log_every", "grad_accum",
                  "keep_checkpoints", "rwa_tokens", "threshold_calibration_steps")
        _non_negative(self, "warmup_steps", "grad_clip", "checkpoint_every", "threshold")
        _choice(self, "lr_schedule", ("constant", "cosine"))
        _choice(self, "engine", ("torch", "deepspeed"))
        _choice(self, "precision", ("fp32", "bf16"))
        _check(self.zero_stage in (0, 1, 2), "zero_stage",
               f"must be 0, 1 or 2, got {self.zero_stage!r}")
        _choice(self, "mitigation", MITIGATIONS)
        for method, lr in self.method_lr.items():
            _check(method in METHODS, f"method_lr.{method}",
                   f"unknown method; choose from {', '.join(METHODS)}")
            _check(lr > 0, f"method_lr.{method}", f"must be > 0, got {lr}")
        _check(0 <= self.rwa_prob <= 1, "rwa_prob", f"must be in [0, 1], got {self.rwa_prob}")
        _check(0 < self.threshold_quantile <= 1, "threshold_quantile",
               f"must be in (0, 1], got {self.threshold_quantile}")


@dataclass
class EvalConfig:
    extractor: str = "tiny"
    """Feature extractor for FID/AMD: tiny (seeded test CNN), xrv-densenet121, inception, clip."""
    extractor_weights: str = ""
    fid_samples: int = 24
    """Validation prompts generated for FID (one image each)."""
    num_inference_steps: int = 25
    """Sampler steps for every generation (FID, attack, trajectory d_mem). The testbed needs
    25: at 10 DDIM steps a fully fine-tuned model's generations for a memorised caption
    scatter around its training image (cliques of 1, nearest 0.12-0.17 tiled l2) instead of
    replaying it."""
    sampler: str = "ddim"
    """Sampling scheduler for generations: ddim (eta 0) or dpm (DPM-Solver++ 2M)."""
    guidance_scale: float = 7.5
    dmem_timesteps: list[int] = field(default_factory=lambda: [100, 300, 500, 700, 900])
    dmem_noise_seeds: int = 2
    """Noise draws per D_mem sample and timestep."""
    seed: int = 0
    batch_size: int = 16
    # `memctl evaluate` only (the search scores d_mem and FID alone):
    attack_prompts: str = "dmem"
    """Prompts the extraction attack uses: dmem (the duplicated D_mem captions: does the
    model replay what it saw most?) or train (the first distinct training captions, as the
    paper's official code attacks, so extracted-image counts compare with its Table 1)."""
    extraction_prompts: int = 4
    """Prompts attacked (Carlini et al. extraction), from attack_prompts; 0 turns the attack
    off."""
    extraction_generations: int = 16
    """Generations per attacked prompt (paper: 500)."""
    clique_size: int = 3
    """A prompt is memorised when this many generations are mutual near-duplicates (paper:
    10 of 500). The testbed's 3 of 16: the pretrained model's largest clique on the D_mem
    prompts is 1, and extraction still needs a clique member within extraction_threshold
    of a training image."""
    edge_threshold: float = 0.1
    """Tiled l2 below which two generations are linked (paper: 0.15)."""
    extraction_threshold: float = 0.1
    """Normalised l2 to a training image at or below which a memorised prompt is extracted
    (paper: 0.15). The embedded testbed's 0.1 sits below the smallest tiled l2 between two
    distinct training images of the built-in dataset (0.130 at 240 images, 32 px), so a
    generation this close to a training image has replayed that image, not a look-alike."""
    tile_grid: int = 4
    text_image: str = "none"
    """Text-image score: biovil-t (chest X-rays), clip (natural images) or none."""
    text_image_weights: str = ""
    """Local model directory for the text-image score."""

    def __post_init__(self) -> None:
        _positive(self, "fid_samples", "num_inference_steps", "dmem_noise_seeds", "batch_size",
                  "extraction_generations", "clique_size", "tile_grid")
        _non_negative(self, "extraction_prompts")
        _check(self.clique_size <= self.extraction_generations, "clique_size",
               f"must be <= extraction_generations ({self.extraction_generations}), "
               f"got {self.clique_size}")
        _positive(self, "edge_threshold", "extraction_threshold")
        _choice(self, "text_image", ("none", "biovil-t", "clip"))
        _choice(self, "attack_prompts", ("dmem", "train"))
        _choice(self, "sampler", ("ddim", "dpm"))
        _check(self.guidance_scale >= 1, "guidance_scale",
               f"must be >= 1, got {self.guidance_scale}")
        _check(bool(self.dmem_timesteps) and all(0 <= t < 1000 for t in self.dmem_timesteps),
               "dmem_timesteps",
               f"must be a non-empty list in [0, 1000), got {self.dmem_timesteps}")


@dataclass
class SlurmConfig:
    """One worker task's request. The defaults fit the embedded tiny model (a worker stays
    well under 4 GB); a real model sets its own (configs/mimic-sd15.yaml). The search head
    refuses a request no node of the partition can hold (memctl.launch.cluster)."""

    partition: str = "gpu"
    gpus_per_node: int = 1
    cpus_per_task: int = 2
    mem_gb: int = 4
    time_min: int = 240
    account: str = ""
    qos: str = ""
    constraint: str = ""
    array_parallelism: int = 16
    extra_sbatch: list[str] = field(default_factory=list)
    """Extra `#SBATCH` options, e.g. ["--exclusive"]."""
    setup: list[str] = field(default_factory=list)
    """Shell lines run before the worker (module load ...)."""
    container: str = ""
    """Apptainer image; when set every job runs inside it."""

    def __post_init__(self) -> None:
        _non_negative(self, "gpus_per_node")
        _positive(self, "cpus_per_task", "mem_gb", "time_min", "array_parallelism")


@dataclass
class SearchConfig:
    study: str = "memctl"
    methods: list[str] = field(default_factory=list)
    """Global search (the paper's section 4): one study per PEFT method, named
    STUDY-METHOD in the same storage; status, retrain --best and report then use the union
    of their Pareto fronts. Empty: one study of peft.method."""
    storage: str = ""
    """SQLAlchemy URL or journal file; empty: sqlite file under run_dir."""
    trials: int = 8
    workers: int = 2
    executor: str = "local"
    population_size: int = 4
    """NSGA-II population; trials / population_size generations are run."""
    crossover_prob: float = 0.9
    mutation_prob: float = 0.0
    """0 means NSGA-II's default 1 / number of bits."""
    seed: int = 0
    heartbeat_s: int = 60
    max_retries: int = 2
    """Retries of a trial whose worker died (same mask, resumed from its checkpoint)."""
    max_consecutive_failures: int = 5
    """A worker stops after this many failed trials in a row (a broken setup, not bad luck)."""
    enqueue_baseline: bool = True
    """Enqueue the all-ones mask first, so the search always scores vanilla PEFT."""
    dmem: str = "noised"
    """The d_mem the search minimises, and `memctl evaluate` reports as d_mem. noised: each
    D_mem training latent noised to eval.dmem_timesteps (eval.dmem_noise_seeds draws), one
    U-Net pass per pair, timestep and draw. trajectory: Wen et al.'s definition, along the
    sampling path from seeded noise prompted by each D_mem caption (eval.num_inference_steps,
    eval.sampler, eval.seed), averaged over steps and prompts; costs more, one pass per pair
    and step (the paper's config: 50 passes per pair against noised's 10)."""
    hv_reference: list[float] = field(default_factory=lambda: [6.0, 6.0])
    """Hypervolume reference point (d_mem, FID): worse than any model worth keeping (here
    about 1.5x the frozen model's FID and the full fine-tune's d_mem). Recorded on the study
    when it is created, so its hypervolume history compares over time and across reports."""

    def __post_init__(self) -> None:
        _positive(self, "trials", "workers", "population_size", "heartbeat_s",
                  "max_consecutive_failures")
        _check(self.population_size >= 2, "population_size", "must be >= 2")
        _choice(self, "executor", EXECUTORS)
        _choice(self, "dmem", ("trajectory", "noised"))
        for i, method in enumerate(self.methods):
            _check(method in METHODS and method != "freeze", f"methods[{i}]",
                   f"must be a method that trains ({', '.join(SEARCHABLE)}), got {method!r}")
        _check(len(set(self.methods)) == len(self.methods), "methods",
               f"lists a method twice: {self.methods}")
        _check(0 <= self.crossover_prob <= 1, "crossover_prob", "must be in [0, 1]")
        _check(0 <= self.mutation_prob <= 1, "mutation_prob", "must be in [0, 1]")
        _check(len(self.hv_reference) == 2 and all(v > 0 for v in self.hv_reference),
               "hv_reference", f"must be two positive numbers [d_mem, FID], got "
               f"{self.hv_reference}")


@dataclass
class Config:
    run_dir: str = "memctl-runs"
    """Where studies, caches, trials, retrains and reports are written (owner-only)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    peft: PeftConfig = field(default_factory=PeftConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def run_path(self) -> Path:
        return Path(self.run_dir)


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None, overrides: typing.Sequence[str] = ()) -> Config:
    """Loads a YAML config (or the embedded defaults when path is None) plus overrides."""
    source = str(path) if path else "<defaults>"
    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            line = f" line {mark.line + 1}" if mark else ""
            raise UserError(f"{p}:{line} invalid YAML") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise UserError(f"{p}: top level must be a mapping of sections")
        data = loaded or {}
    for override in overrides:
        _apply_override(data, override)
        source += f" + {override.split('=', 1)[0]}"
    try:
        return _build(Config, data)
    except _Invalid as err:
        raise UserError(f"{source}: {err.name}: {err.message}") from None


def config_from_dict(data: dict[str, Any], overrides: typing.Sequence[str] = ()) -> Config:
    """Rebuilds a Config recorded with to_dict() (study attributes, run directories)."""
    data = copy.deepcopy(data)
    for override in overrides:
        _apply_override(data, override)
    try:
        return _build(Config, data)
    except _Invalid as err:
        raise UserError(f"recorded config: {err.name}: {err.message}") from None


def replace_section(cfg: Config, section: str, source: str, **changes: Any) -> Config:
    """cfg with fields of one section changed (command-line flags), validated like a file's
    fields: a bad value raises UserError naming `source` and the dotted field."""
    try:
        new = dataclasses.replace(getattr(cfg, section), **changes)
    except _Invalid as err:
        raise UserError(f"{source}: {section}.{err.name}: {err.message}") from None
    return dataclasses.replace(cfg, **{section: new})


def dump_config(cfg: Config, path: Path, command: str, comments: bool = False) -> None:
    """Writes cfg as YAML headed by the command that runs it; with `comments`, each field's
    docstring above it (a starter config documents itself)."""
    body = commented_yaml(cfg) if comments else yaml.safe_dump(cfg.to_dict(), sort_keys=False)
    path.write_text(f"# {command}\n" + body)
