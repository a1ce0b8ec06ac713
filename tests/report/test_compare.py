"""The comparison table: collected from evaluation.json files, rendered in every format."""

import csv
import json

from memctl.report.compare import collect_evaluations


def _evaluation(method: str, mitigation: str, fid: float, extracted: int) -> dict:
    return {"method": method, "mitigation": mitigation, "mask": "1" * 16, "trainable": 1234,
            "total": 12340,
            "fid_test": fid, "amd": 0.25, "d_mem": 1.5,
            "text_image": {"name": "none", "value": None, "n": 6, "reason": "off"},
            "extraction": {"prompts": 4, "n_memorised": extracted + 1, "n_extracted": extracted,
                           "n_extracted_images": 2 * extracted, "attack_prompts": "train",
                           "generations_per_prompt": 16, "clique_size": 3,
                           "extraction_threshold": 0.1, "records": []}}


def _put(path, obj) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))


def test_collects_retrains_then_baselines_in_paper_order_skipping_broken(tmp_path):
    _put(tmp_path / "baselines/svdiff-threshold/evaluation.json",
         _evaluation("svdiff", "threshold", 3, 0))
    _put(tmp_path / "baselines/svdiff/evaluation.json", _evaluation("svdiff", "none", 2.5, 1))
    _put(tmp_path / "baselines/full/evaluation.json", _evaluation("full", "none", 1, 3))
    _put(tmp_path / "baselines/memcontrol/same_as.json", {"same_as": "svdiff"})
    _put(tmp_path / "retrain/study-trial7/evaluation.json", _evaluation("svdiff", "none", 2, 0))
    _put(tmp_path / "baselines/full-rwa/evaluation.json", "{half a fi")  # interrupted write
    _put(tmp_path / "baselines/memcontrol-rwa/same_as.json", {"same_as": "gone"})
    rows = collect_evaluations(tmp_path)
    assert [(r.name, r.kind, r.same_as) for r in rows] == [
        ("study-trial7", "retrain", None), ("full", "baseline", None),
        ("svdiff", "baseline", None), ("svdiff-threshold", "baseline", None),
        ("memcontrol", "baseline", "svdiff")]
    assert rows[1].extracted == 3 and rows[1].memorised == 4 and rows[1].fid == 1
    assert rows[4].fid == rows[2].fid == 2.5 and rows[1].extracted_images == 6


def test_report_renders_the_comparison(tmp_path):
    from memctl.report.collect import StudySnapshot
    from memctl.report.render import write_report

    _put(tmp_path / "run/baselines/full/evaluation.json", _evaluation("full", "none", 1.5, 2))
    rows = collect_evaluations(tmp_path / "run")
    snap = StudySnapshot(name="s", storage="sqlite://", n_bits=16, method="svdiff",
                         space="blocks16", block_names=[], rows=[], counts={}, picked=None,
                         hypervolume=None, trials_per_hour=None)
    paths = write_report(snap, tmp_path / "out", rows)
    md = paths["report.md"].read_text()
    assert "## Table 1" in md
    assert "| full | baseline | full | none | 1,234 | 10.00% | 1.50 |" in md
    assert "| 2/4 | 4 | 3/4 |" in md and "n/a (off)" in md
    assert "train prompts, 16 generations, clique 3, l2 0.1" in md
    assert 'id="table1"' in paths["report.html"].read_text()
    with open(paths["comparison.csv"]) as fh:
        table = list(csv.DictReader(fh))
    assert table[0]["name"] == "full" and table[0]["extracted"] == "2"
    assert table[0]["extracted_images"] == "4"
    # Without evaluations there is no comparison section or file.
    paths = write_report(snap, tmp_path / "out2", [])
    assert "Comparison" not in paths["report.md"].read_text() and "comparison.csv" not in paths
