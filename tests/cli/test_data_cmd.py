"""memctl cache build / info."""

from __future__ import annotations

import json
import stat

from click.testing import CliRunner

from memctl.cli import main


def test_cache_info_shows_why_a_build_wrote_no_cache(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.csv").write_text("path,caption,subject_id\n"
                                    "gone/a.png,a chest x-ray,s1\n"
                                    "gone/b.png,another view,s2\n")
    args = [f"run_dir={tmp_path / 'runs'}", "data.source=csv", f"data.path={tmp_path / 'm.csv'}"]
    build = CliRunner().invoke(main, ["cache", "build", *args])
    assert build.exit_code == 2 and "memctl cache info" in build.stderr, build.output

    info = CliRunner().invoke(main, ["cache", "info", *args])
    assert info.exit_code == 0, info.output
    assert "gone/a.png: missing image file" in info.stdout
    assert "gone/b.png: missing image file" in info.stdout
    as_json = json.loads(CliRunner().invoke(main, ["cache", "info", *args, "--json"]).stdout)
    assert as_json["written"] is False and as_json["usable"] == 0
    assert len(as_json["skipped"]) == 2

    (report,) = (tmp_path / "runs" / "cache").glob("*.skipped.json")
    assert stat.S_IMODE(report.stat().st_mode) == 0o600  # owner-only, like the cache
