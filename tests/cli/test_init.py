"""memctl init: a starter config that documents every field and loads to the defaults."""

from __future__ import annotations

from click.testing import CliRunner

from memctl.cli import main
from memctl.config import Config, load_config
from memctl.config_docs import field_docs


def _init(tmp_path, monkeypatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    return (tmp_path / "memctl.yaml").read_text().splitlines()


def test_field_docs_reads_the_literal_after_each_field():
    docs = field_docs()
    assert docs[("DataConfig", "dmem_repeats")] == (
        "How often each D_mem pair is repeated in the proxy set (paper: 50).")
    assert docs[("DataConfig", "official_split")].splitlines()[1] == (
        "where it has one; false: draw every subject's split from split_seed.")
    assert ("TrainConfig", "batch_size") not in docs  # no literal follows it


def test_init_writes_each_docstring_above_its_field(tmp_path, monkeypatch):
    lines = _init(tmp_path, monkeypatch)
    assert lines[0] == "# memctl search -c memctl.yaml"
    at = lines.index("  dmem_repeats: 50")
    assert lines[at - 1] == (
        "  # How often each D_mem pair is repeated in the proxy set (paper: 50).")
    at = lines.index("  official_split: true")
    assert lines[at - 2:at] == [
        "  # Use the source's official split (MIMIC split file, imagefolder train/val/test "
        "folders)",
        "  # where it has one; false: draw every subject's split from split_seed."]
    for (_, name), doc in field_docs().items():  # every documented field, in every section
        first = f"# {doc.splitlines()[0]}".rstrip()
        assert any(line.strip() == first for line in lines), name


def test_init_file_loads_to_the_default_config(tmp_path, monkeypatch):
    _init(tmp_path, monkeypatch)
    assert load_config(tmp_path / "memctl.yaml") == Config()
