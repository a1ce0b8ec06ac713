"""Renders a report in headless chromium (the system's, driven by playwright)."""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import skip_or_fail


@dataclass
class Rendered:
    errors: list[str] = field(default_factory=list)
    """Console errors and uncaught page errors."""
    counts: dict[str, int] = field(default_factory=dict)
    """Elements matching each selector asked for."""
    images_decoded: dict[str, bool] = field(default_factory=dict)
    """Per figure id: its image decoded to a non-empty bitmap."""
    ink: float = 0.0
    """Fraction of screenshot pixels that are not the page background."""


def chromium() -> str:
    """The system chromium; skips without one, fails under MEMCTL_REQUIRE_INFRA=1."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        skip_or_fail("no chromium: run slurm/dev/install.sh (installs Debian's chromium)")
    return path


def render(html: Path, selectors: list[str], figures: list[str]) -> Rendered:
    import numpy as np
    from PIL import Image
    from playwright.sync_api import sync_playwright

    out = Rendered()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(),
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda m: out.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: out.errors.append(str(e)))
        page.goto(html.resolve().as_uri(), wait_until="load")
        out.counts = {s: page.locator(s).count() for s in selectors}
        out.images_decoded = {
            f: bool(page.evaluate(
                "id => { const i = document.querySelector('#' + id + ' img');"
                " return !!i && i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; }", f))
            for f in figures}
        shot = np.asarray(Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L"))
        browser.close()
    out.ink = float((shot < 245).mean())
    return out
