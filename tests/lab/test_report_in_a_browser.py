"""The lab's report as a reader sees it: headless Chromium (Debian's ``chromium``) opens the
self-contained HTML, every figure decodes to an image, and every row of the claims table links to
an element of the page (the experiment's evidence)."""

import json
import re
import shutil
import subprocess

import pytest

from gumbelkit.lab.answer import run_lab

from ..harness.fake import experiments
from .test_answer import TwoAuthors

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# appended to a copy of the page: what the browser found, written into the DOM it dumps
PROBE = """<script>
document.body.dataset.probe = JSON.stringify({
  images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight]),
  links: [...document.querySelectorAll("tr.claim a")].map(
    a => [a.getAttribute("href"), !!document.getElementById(a.getAttribute("href").slice(1))]),
});
</script></body>"""


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_report_renders_with_every_figure_and_every_claim_linked(tmp_path):
    outcome = run_lab(tmp_path / "lab", {**experiments("F1"), "F2": TwoAuthors("F2")},
                      show_progress=False)
    page = tmp_path / "probe.html"
    page.write_text(outcome.paths["html"].read_text().replace("</body>", PROBE))
    dom = subprocess.run(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True).stdout
    probe = json.loads(re.search(r'data-probe="([^"]*)"', dom).group(1).replace("&quot;", '"'))
    assert len(probe["images"]) == 2  # one figure per experiment
    assert all(complete and width > 0 and height > 0 for complete, width, height
               in probe["images"])
    assert [href for href, _ in probe["links"]] == ["#f1", "#f2", "#f2"]  # one row per claim
    assert all(found for _, found in probe["links"])
