"""The report of a (global) search: figures, mask map, Table 1, provenance, hypervolume
against the recorded reference; rendered in a real headless browser."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import optuna
import pytest

from memctl.report.collect import collect
from memctl.report.compare import collect_evaluations
from memctl.report.render import MAX_TABLE_ROWS, write_report
from memctl.search.pareto import hypervolume
from tests.report.browser import render

BLOCKS = [f"block{i}" for i in range(4)]
URL_WITH_PASSWORD = "postgresql+psycopg2://memctl:s3cret@db.example/memctl"


def _study(storage, name: str, method: str, values: list[tuple[float, float]],
           reference: list[float] | None = (6.0, 6.0)) -> optuna.Study:
    study = optuna.create_study(storage=storage, study_name=name,
                                directions=["minimize", "minimize"])
    study.set_user_attr("config", {"peft": {"method": method, "space": "blocks16"},
                                   "search": {"storage": URL_WITH_PASSWORD}})
    study.set_user_attr("n_bits", len(BLOCKS))
    study.set_user_attr("block_names", BLOCKS)
    study.set_user_attr("memctl_version", "0.1.0")
    if reference:
        study.set_user_attr("hv_reference", list(reference))
    t0 = dt.datetime(2026, 1, 1)
    rng = np.random.default_rng(len(name))
    for v in values:
        mask = "".join(str(b) for b in rng.integers(0, 2, len(BLOCKS)))
        attrs = {"mask": mask, "trainable": 1000 * (1 + mask.count("1")), "total": 10_000}
        state = optuna.trial.TrialState.FAIL if v is None else optuna.trial.TrialState.COMPLETE
        study.add_trial(optuna.trial.create_trial(
            state=state, values=None if v is None else list(v), user_attrs=attrs,
            system_attrs={}, params={}, distributions={}))
    # create_trial stamps "now": spread the trials over an hour so the timeline has a span.
    for t in study.get_trials(deepcopy=False):
        t.datetime_start = t0 + dt.timedelta(minutes=5 * t.number)
        t.datetime_complete = t.datetime_start + dt.timedelta(minutes=7)
    return study


def _snapshot(tmp_path, reference=(6.0, 6.0)):
    storage = optuna.storages.InMemoryStorage()
    a = _study(storage, "s-difffit", "difffit",
               [(3.0, 2.0), (1.0, 4.0), (2.0, 2.5), None, (2.5, 1.5)], reference)
    b = _study(storage, "s-attention", "attention", [(0.5, 5.0), (4.0, 4.0), (7.0, 1.0)],
               reference)
    return collect([a, b], URL_WITH_PASSWORD, name="s")


def _evaluation(method: str, mask: str, fid: float, d_mem: float) -> dict:
    return {"method": method, "mitigation": "none", "mask": mask, "trainable": 1234,
            "total": 10_000, "fid_test": fid, "amd": 0.03, "d_mem": d_mem,
            "text_image": {"name": "clip_score", "value": None, "n": 6,
                           "reason": "no local CLIP model"},
            "extraction": {"prompts": 4, "n_memorised": 1, "n_extracted": 1,
                           "n_extracted_images": 1, "attack_prompts": "dmem",
                           "generations_per_prompt": 8, "clique_size": 3,
                           "extraction_threshold": 0.1, "records": []}}


def test_hypervolume_uses_the_recorded_reference_and_grows(tmp_path):
    snap = _snapshot(tmp_path)
    assert snap.hv_reference == [6.0, 6.0] and snap.hv_reference_recorded
    done = np.array([(r.d_mem, r.fid) for r in snap.rows if r.state == "COMPLETE"])
    assert snap.hypervolume == pytest.approx(hypervolume(done, [6.0, 6.0]))
    assert len(snap.hv_history) == len(done) == 7
    assert all(b >= a for a, b in zip(snap.hv_history, snap.hv_history[1:], strict=False))
    # (7, 1) lies outside the reference box: it adds nothing.
    inside = done[done[:, 0] < 6.0]
    assert len(inside) == 6 and hypervolume(inside, [6.0, 6.0]) == snap.hypervolume


def test_a_study_without_a_recorded_reference_says_its_values_do_not_compare(tmp_path):
    snap = _snapshot(tmp_path, reference=None)
    assert not snap.hv_reference_recorded
    assert snap.hv_reference == pytest.approx([7.0 * 1.1, 5.0 * 1.1])
    html = write_report(snap, tmp_path / "out")["report.html"].read_text()
    assert "not comparable with other reports" in html


def test_report_holds_every_section_and_hides_the_password(tmp_path):
    snap = _snapshot(tmp_path)
    pick = next(r for r in snap.rows if r.picked)
    run = tmp_path / "run"
    for name, method, mask, fid, d in [("full", "full", "1111", 1.0, 5.0),
                                       ("freeze", "freeze", "0000", 4.0, 1.0),
                                       ("memcontrol", pick.method, pick.mask, 2.0, 2.0)]:
        (run / "baselines" / name).mkdir(parents=True)
        (run / "baselines" / name / "evaluation.json").write_text(
            json.dumps(_evaluation(method, mask, fid, d)))
    comparison = collect_evaluations(run)
    paths = write_report(snap, tmp_path / "out", comparison)
    html = paths["report.html"].read_text()
    for section in ('id="figure3"', 'id="hypervolume"', 'id="mask-map"', 'id="table1"',
                    'id="trials-over-time"', 'id="all-trials"', 'id="provenance"'):
        assert section in html, section
    assert "s3cret" not in html and "s3cret" not in paths["trials.json"].read_text()
    assert "s3cret" not in paths["report.md"].read_text()
    assert "memcontrol ★" in html and "n/a</span> (no local CLIP model)" in html
    assert all((tmp_path / "out" / f).stat().st_size > 1000
               for f in ("pareto.png", "hypervolume.png", "trials_over_time.png"))
    front = {(r.study, r.number) for r in snap.front}
    assert html.count('<td class="bit on"') == sum(r.mask.count("1") for r in snap.front)
    # (0.5, 5) (1, 4) (2, 2.5) (2.5, 1.5) (7, 1): the union over both studies
    assert front == {("s-attention", 0), ("s-difffit", 1), ("s-difffit", 2), ("s-difffit", 4),
                     ("s-attention", 2)}


def test_many_trials_are_linked_not_listed(tmp_path):
    storage = optuna.storages.InMemoryStorage()
    rng = np.random.default_rng(0)
    study = _study(storage, "big", "svdiff",
                   [tuple(v) for v in rng.random((MAX_TABLE_ROWS + 1, 2)) * 5])
    html = write_report(collect(study, "sqlite://"), tmp_path / "out")["report.html"].read_text()
    assert 'id="all-trials"' not in html and f"{MAX_TABLE_ROWS + 1} trials: see" in html


def test_report_renders_in_a_headless_browser(tmp_path):
    snap = _snapshot(tmp_path)
    run = tmp_path / "run"
    (run / "baselines" / "full").mkdir(parents=True)
    (run / "baselines" / "full" / "evaluation.json").write_text(
        json.dumps(_evaluation("full", "1111", 1.0, 5.0)))
    html = write_report(snap, tmp_path / "out", collect_evaluations(run))["report.html"]
    page = render(html, ["#mask-map tr", "#table1 tr.model", "#front tr"],
                  ["figure3", "hypervolume", "trials-over-time"])
    assert page.errors == []
    assert all(page.images_decoded.values()), page.images_decoded
    assert page.counts["#mask-map tr"] == len(snap.front) + 1  # + the header
    assert page.counts["#table1 tr.model"] == 1
    assert page.ink > 0.02  # not a blank page


def test_the_report_reads_the_nearest_pairs_file_evaluate_writes():
    from memctl.report.panels import NEAREST_FILE
    from memctl.runs.evaluate import NEAREST_FILE as WRITTEN

    assert NEAREST_FILE == WRITTEN
