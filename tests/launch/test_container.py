"""The Apptainer image recipe, its lock and build script, and running jobs through the image.

No apptainer binary can be installed here: the def file is checked with spython and the
project lint, and jobs run through a pass-through shim standing in for `apptainer exec`
(tests/launch/_shim.py, also used by test_sbatch.py) that checks and records its arguments, applies
the def file's %environment, then runs the command on the host.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from memctl.config import SlurmConfig, load_config
from memctl.errors import UserError
from memctl.launch import container
from memctl.launch.executors import make_executor
from tests.launch._shim import DEF, REPO, load_script, read_calls, write_shim

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

LOCK = REPO / "containers" / "requirements.lock"

@pytest.fixture(autouse=True)
def _no_site_env(monkeypatch):
    for var in ("MEMCTL_APPTAINER", "MEMCTL_BINDS", "MEMCTL_CACHE", "MEMCTL_SLURM_BINDS"):
        monkeypatch.delenv(var, raising=False)


# ---------------------------------------------------------------------------------------------
# Apptainer.def


def test_def_parses_with_spython():
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from spython.client import main; "
         "sys.argv[0] = 'spython'; sys.exit(main())",
         "recipe", "--parser", "singularity", str(DEF)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "FROM pytorch/pytorch:" in proc.stdout
    assert "memctl" in proc.stdout


def test_def_passes_the_project_lint():
    lint = load_script("lint_def")
    assert lint.lint(DEF.read_text(), root=REPO) == []


def test_def_required_sections_base_arg_and_runscript():
    lint = load_script("lint_def")
    d = lint.parse(DEF.read_text())
    for section in ("arguments", "files", "post", "environment", "runscript", "test", "labels"):
        assert section in d.sections, section
    assert re.fullmatch(r"pytorch/pytorch:{{\s*BASE_TAG\s*}}", d.header["from"])
    assert "devel" in lint.arguments(d.sections["arguments"])["BASE_TAG"]  # nvcc for DeepSpeed
    assert d.sections["runscript"].strip() == 'exec memctl "$@"'


GOOD = """\
Bootstrap: docker
From: pytorch/pytorch:{{ BASE_TAG }}

%arguments
    BASE_TAG=2.9.0-cuda12.8-cudnn9-devel

%files
    pyproject.toml /opt/src/pyproject.toml

%post
    set -eu
    echo {{ BASE_TAG }}

%environment
    export HF_HUB_OFFLINE=1
    export TRANSFORMERS_OFFLINE=1
    export MEMCTL_CACHE=/memctl/cache
    export HF_HOME=$MEMCTL_CACHE/hf
    export TORCH_EXTENSIONS_DIR=$MEMCTL_CACHE/ext

%runscript
    exec memctl "$@"

%test
    memctl --version

%labels
    org.opencontainers.image.version 1
    org.opencontainers.image.source here
"""


@pytest.mark.parametrize("change,expected", [
    (lambda t: t, None),
    (lambda t: t.replace("%test\n    memctl --version\n", ""), "missing section %test"),
    (lambda t: t + "%postinstall\n    true\n", "unknown section %postinstall"),
    (lambda t: t.replace(":{{ BASE_TAG }}", ":2.9.0"), "From must take its tag"),
    (lambda t: t.replace("echo {{ BASE_TAG }}", "echo {{ CUDA }}"), "CUDA }} is not declared"),
    (lambda t: t.replace("echo {{ BASE_TAG }}", "echo x # {{ BASE_TAG }}"), "follows a '#'"),
    (lambda t: t.replace('exec memctl "$@"', "memctl"), "%runscript must be"),
    (lambda t: t.replace("    echo {{", "    %d {{"), "unknown section %d"),
    (lambda t: t.replace("export HF_HUB_OFFLINE=1", "true"), "HF_HUB_OFFLINE=1"),
    (lambda t: t.replace("set -eu", "true"), "%post: must start with `set -e"),
    (lambda t: t.replace("    BASE_TAG=", "    UNUSED=1\n    BASE_TAG="), "UNUSED is declared"),
    (lambda t: t.replace("version 1", "x 1"), "no version label"),
    (lambda t: t.replace("pyproject.toml /opt", "nope.toml /opt"), "nope.toml does not exist"),
])
def test_lint_catches(change, expected):
    problems = load_script("lint_def").lint(change(GOOD), root=REPO)
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_lint_cli_exit_codes(tmp_path):
    bad = tmp_path / "bad.def"
    bad.write_text(GOOD.replace("%runscript", "%runscrip"))
    script = str(REPO / "containers" / "lint_def.py")
    assert subprocess.run([sys.executable, script, str(DEF)]).returncode == 0
    proc = subprocess.run([sys.executable, script, str(bad)], capture_output=True, text=True)
    assert proc.returncode == 1 and "unknown section %runscrip" in proc.stderr


# ---------------------------------------------------------------------------------------------
# requirements.lock and the image check


def _lock_pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version and " " not in line, f"not a pin: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_lock_pins_every_runtime_dependency_but_torch():
    pins = _lock_pins()
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]).lower()
             for d in deps}
    assert names - {"torch"} <= set(pins), names - set(pins)
    assert not {"torch", "torchvision", "triton"} & set(pins)
    assert not [n for n in pins if n.startswith("nvidia-")]
    assert {"torchxrayvision", "torch-fidelity", "grpcio"} <= set(pins)  # paper + proxy extras
    header = re.search(r"^# python (\d+\.\d+)$", LOCK.read_text(), re.M)
    assert header, "the def file checks the base image's Python against this line"


def test_image_check_compares_installed_versions(tmp_path):
    check = load_script("image_check")
    from importlib.metadata import version

    lock = tmp_path / "lock"
    lock.write_text(f"# python 3.11\nclick=={version('click')}\n")
    assert check.lock_mismatches(lock) == []
    lock.write_text("click==0.0.1\nno-such-dist-xyz==1.0\n")
    problems = check.lock_mismatches(lock)
    assert any("click: installed" in p for p in problems)
    assert any("no-such-dist-xyz: not installed" in p for p in problems)
    assert check.import_failures(("json", "no_such_module_xyz")) == [
        "no_such_module_xyz: ModuleNotFoundError: No module named 'no_such_module_xyz'"]


# ---------------------------------------------------------------------------------------------
# build.sh with a stand-in apptainer


def test_build_script_passes_args_and_prints_digest(tmp_path):
    fake = tmp_path / "fake-apptainer"
    calls = tmp_path / "calls"
    # Writes the image (second to last argument) and records the arguments.
    fake.write_text(f'#!/bin/bash\nprintf "%s\\n" "$@" > {calls}\n'
                    'printf image > "${@: -2:1}"\n')
    fake.chmod(0o755)
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root: --fakeroot expected
    (bindir / "id").chmod(0o755)
    image = tmp_path / "out.sif"
    env = {**os.environ, "MEMCTL_APPTAINER": str(fake), "PATH": f"{bindir}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(REPO / "containers" / "build.sh"), str(image),
                           "--build-arg", "CUDA_ARCHS=9.0"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    args = calls.read_text().splitlines()
    assert args[0] == "build" and "--fakeroot" in args
    assert "MEMCTL_VERSION=0.1.0" in args and "CUDA_ARCHS=9.0" in args
    assert any(a.startswith("SOURCE=") for a in args)
    assert args[-2:] == [str(image), "Apptainer.def"]
    import hashlib

    assert f"sha256:{hashlib.sha256(b'image').hexdigest()}" in proc.stdout


# ---------------------------------------------------------------------------------------------
# memctl.launch.container


@pytest.fixture
def image(tmp_path) -> Path:
    path = tmp_path / "memctl.sif"
    path.write_bytes(b"")
    return path


def test_python_command_binds_same_paths(tmp_path, image, monkeypatch):
    run = tmp_path / "scratch" / "run"
    (run / "jobs").mkdir(parents=True)
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.chdir(tmp_path)
    cmd = shlex.split(container.python_command(str(image), [run / "jobs", "scratch/run", models]))
    # nested binds collapse into their parent; relative paths become absolute
    assert cmd == ["apptainer", "exec", "--nv", "--bind", f"{models},{run}", str(image), "python"]
    cmd = shlex.split(container.python_command(str(image), [run], gpus=False))
    assert "--nv" not in cmd


def test_python_command_site_env(tmp_path, image, monkeypatch):
    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    monkeypatch.setenv("MEMCTL_APPTAINER", "/opt/bin/apptainer")
    monkeypatch.setenv("MEMCTL_BINDS", f"{data}, {data}:/data:ro")
    monkeypatch.setenv("MEMCTL_CACHE", str(cache))
    cmd = shlex.split(container.python_command(str(image), []))
    assert cmd[0] == "/opt/bin/apptainer"
    assert cmd[cmd.index("--bind") + 1] == f"{cache},{data},{data}:/data:ro"
    assert cache.is_dir()  # created: apptainer refuses a missing bind source


@pytest.mark.parametrize("bind,message", [
    ("/no/such/dir", "not found: /no/such/dir"),
    ("/tmp/a,b", "commas cannot be bound"),
])
def test_python_command_bad_binds(image, bind, message):
    with pytest.raises(UserError, match=message):
        container.python_command(str(image), [bind])


def test_python_command_missing_image(tmp_path):
    with pytest.raises(UserError, match="slurm.container: .*image not found"):
        container.python_command(str(tmp_path / "nope.sif"), [])


def test_config_binds(tmp_path):
    (tmp_path / "model").mkdir()
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.parent.mkdir()
    manifest.write_text("path,caption\n")
    cfg = load_config(None, [f"run_dir={tmp_path / 'run'}", f"model.path={tmp_path / 'model'}",
                             "data.source=csv", f"data.path={manifest}",
                             f"search.storage=sqlite:///{tmp_path / 'db' / 'studies.db'}"])
    (tmp_path / "run").mkdir()
    (tmp_path / "db").mkdir()
    assert container.config_binds(cfg) == [str(tmp_path / "run"), str(tmp_path / "model"),
                                           str(tmp_path / "data"), str(tmp_path / "db")]


@pytest.mark.parametrize("kind", ["slurm", "local"])
def test_make_executor_uses_the_image(tmp_path, image, kind):
    slurm = SlurmConfig(container=str(image), gpus_per_node=0)
    ex = make_executor(kind, tmp_path / "jobs", slurm, name="t", workers=2,
                       binds=[tmp_path / "jobs"])
    assert ex._executor.python == shlex.join(
        ["apptainer", "exec", "--bind", str(tmp_path / "jobs"), str(image), "python"])


def test_make_executor_without_container_keeps_host_python(tmp_path):
    ex = make_executor("local", tmp_path / "jobs", SlurmConfig(), name="t", workers=1)
    assert ex._executor.python == shlex.quote(sys.executable)


def test_debug_executor_ignores_container(tmp_path, image):
    ex = make_executor("debug", tmp_path / "jobs", SlurmConfig(container=str(image)),
                       name="t", workers=1)
    assert ex.submit(sum, [1, 2]).result() == 3


def test_local_job_runs_through_the_shim(tmp_path, image, monkeypatch):
    """submitit's local executor starts its job via the container prefix; the shim runs it."""
    shim, log = write_shim(tmp_path / "shim")
    cache = tmp_path / "cache"
    monkeypatch.setenv("MEMCTL_APPTAINER", str(shim))
    monkeypatch.setenv("MEMCTL_CACHE", str(cache))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    folder = tmp_path / "jobs"
    ex = make_executor("local", folder, SlurmConfig(container=str(image), gpus_per_node=0),
                       name="t", workers=1)
    job = ex.submit(os.environ.get, "HF_HUB_OFFLINE")
    assert job.result() == "1"  # the image's %environment was applied
    (call,) = read_calls(log)
    assert call["image"] == str(image) and not call["nv"]
    assert str(folder) in call["binds"] and str(cache) in call["binds"]
    assert call["env"]["HF_HOME"] == f"{cache}/huggingface"
    assert call["argv"][:4] == ["python", "-u", "-m", "submitit.core._submit"]
