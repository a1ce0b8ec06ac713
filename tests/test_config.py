import subprocess
import sys

import pytest

from memctl.config import Config, load_config
from memctl.errors import UserError
from tests.conftest import REPO


def test_tiny_yaml_is_the_embedded_default():
    assert load_config(REPO / "configs" / "tiny.yaml") == Config()


def test_every_shipped_config_loads_and_names_its_command():
    for path in sorted((REPO / "configs").glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# ") and ("memctl " in first or "sbatch " in first), path
        load_config(path)


def test_dotted_overrides_are_typed():
    cfg = load_config(None, ["train.lr=1e-4", "train.steps=3", "eval.dmem_timesteps=[1, 2]"])
    assert cfg.train.lr == 1e-4 and cfg.train.steps == 3 and cfg.eval.dmem_timesteps == [1, 2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("train:\n  lrr: 1\n", "train.lrr: unknown field"),
        ("train:\n  lr: -1\n", "train.lr: must be > 0"),
        ("train:\n  steps: ten\n", "train.steps: must be an integer"),
        ("peft:\n  method: dora\n", "peft.method: must be one of"),
        ("search:\n  dmem: sampled\n", "search.dmem: must be one of trajectory, noised"),
        ("data:\n  val_fraction: 0.6\n  test_fraction: 0.5\n", "data.val_fraction"),
        ("- a\n- b\n", "top level must be a mapping"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(UserError) as err:
        load_config(path)
    assert str(path) in str(err.value) and expected in str(err.value)


def test_bad_override_names_field():
    with pytest.raises(UserError, match=r"search\.workers: must be > 0"):
        load_config(None, ["search.workers=0"])


def test_cli_bad_config_exits_2_with_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  lr: -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "cache", "info", "-c", str(path)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "train.lr" in lines[0] and str(path) in lines[0], proc.stderr


def test_cli_bad_override_exits_2(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "memctl", "search", "--detach", "search.executor=kubernetes"],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2 and "search.executor" in proc.stderr
    assert not (tmp_path / "memctl-runs").exists()  # nothing written on bad input


def test_method_learning_rates_are_checked_and_applied():
    cfg = load_config(None, ["train.method_lr={svdiff: 1e-4}"])
    assert cfg.train.for_method("svdiff").lr == 1e-4
    assert cfg.train.for_method("attention").lr == cfg.train.lr
    for bad, message in (("train.method_lr.bogus=1", "train.method_lr.bogus: unknown method"),
                         ("train.method_lr.svdiff=0", "train.method_lr.svdiff: must be > 0"),
                         ("train.method_lr=3", "train.method_lr: must be a mapping")):
        with pytest.raises(UserError, match=message):
            load_config(None, [bad])
