from memctl.data.reports import normalise, report_caption, sections

REPORT = """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with new onset ascites  // eval for infection

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  The
 cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
"""


def test_sections_in_order():
    names = [name for name, _ in sections(REPORT)]
    assert names == ["EXAMINATION", "INDICATION", "FINDINGS", "IMPRESSION"]


def test_impression_preferred_then_findings():
    assert report_caption(REPORT) == ("No acute cardiopulmonary process.", "IMPRESSION")
    no_impression = REPORT.split(" IMPRESSION:")[0]
    caption, used = report_caption(no_impression)
    assert used == "FINDINGS"
    assert caption == ("There is no focal consolidation, pleural effusion or pneumothorax. "
                       "The cardiomediastinal silhouette is normal.")


def test_empty_impression_falls_back_and_last_impression_wins():
    text = " FINDINGS: Small effusion.\n IMPRESSION:  ___ \n"
    assert report_caption(text) == ("Small effusion.", "FINDINGS")
    addendum = " IMPRESSION: First read.\n ADDENDUM: x\n IMPRESSION: Final read.\n"
    assert report_caption(addendum)[0] == "Final read."
    assert report_caption(" CONCLUSION: Stable.\n") == ("Stable.", "IMPRESSION")


def test_nothing_usable_says_why():
    assert report_caption("no headers at all")[1].startswith("empty caption")
    assert report_caption(" INDICATION: cough\n")[1].startswith("empty caption")


def test_normalise_removes_placeholders_and_tidies():
    assert normalise("Compared to ___, no change.\n  Small ___ effusion .") == \
        "Compared to, no change. Small effusion."
    assert normalise("Dr. ___ was notified (___) at ___ ..") == "Dr. was notified at."
    assert normalise("  ___  ") == ""
