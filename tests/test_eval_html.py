"""The HTML report opens in a real browser (Debian's headless chromium) with every chart drawn."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from guardrails import Content, LocalGuard, Verdict
from guardrails.eval import EvalReport, evaluate
from tests.eval_cases import generate

CHROMIUM = shutil.which("chromium")

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (CI installs it)",
)

# Appended to a copy of the report only: it writes what the browser laid out into the DOM, which
# --dump-dom then prints. The report itself has no script.
PROBE = """<script>
window.addEventListener("load", () => {
  const charts = [...document.querySelectorAll("img.chart")].map((img) => {
    const box = img.getBoundingClientRect();
    return {alt: img.alt, complete: img.complete, natural: [img.naturalWidth, img.naturalHeight],
            box: [box.left, box.top, box.width, box.height]};
  });
  const out = document.createElement("pre");
  out.id = "probe";
  out.textContent = JSON.stringify(charts);
  document.body.appendChild(out);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1200,2400",
        *args,
    ]
    return subprocess.run(command, capture_output=True, timeout=120, check=False, cwd=tmp_path)


_CATEGORY = {"prompt_attack": "prompt_attack", "sensitive_information": "sensitive_data"}
_CATEGORY["harmful_content"] = "harmful_content"


class CategoryGuard(LocalGuard):
    """LocalGuard reporting its findings as `Verdict.categories` (as the vendor guards do)."""

    name = "categories"

    def _decide(self, content: Content) -> Verdict:
        verdict = super()._decide(content)
        found = frozenset(_CATEGORY[f.category] for text in content.iter_texts() for f in self.findings(text))
        return verdict.model_copy(update={"categories": found})


def _report() -> EvalReport:
    """Two guards that disagree, with categories, latencies and confusion matrices."""
    rows = [case.row for case in generate(200, seed=3)]
    return evaluate(rows, {"strict": CategoryGuard(), "lenient": LocalGuard(sensitive_information=False)})


def test_every_chart_renders_in_chromium(tmp_path: Path) -> None:
    """Each chart image decodes and has a size on the page; the screenshot is not blank."""
    report = _report()
    assert report.guards["strict"].categories  # the categories chart has bars
    page = report.to_html(tmp_path / "report.html")
    html = page.read_text()
    assert "<script" not in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # self-contained: no fetch
    charts = html.count("<img class='chart'")
    assert charts == 4  # two confusion matrices, latency, categories

    probed = tmp_path / "probed.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"))
    dumped = _chromium(tmp_path, "--dump-dom", probed.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    match = re.search(rb'<pre id="probe">(.*?)</pre>', dumped.stdout, re.DOTALL)
    assert match is not None, dumped.stdout[-2000:]
    found = json.loads(match.group(1).decode().replace("&quot;", '"'))
    assert len(found) == charts
    for chart in found:
        assert chart["complete"], chart["alt"]
        assert min(chart["natural"]) > 50, chart  # the SVG decoded to an image of its own size
        assert min(chart["box"][2:]) > 50, chart

    shot = tmp_path / "shot.png"
    taken = _chromium(tmp_path, f"--screenshot={shot}", page.as_uri())
    assert taken.returncode == 0, taken.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        for chart in found:
            left, top, width, height = (int(v) for v in chart["box"])
            if top + height > rgb.height:
                continue  # below the window: checked by its decoded size above
            region = rgb.crop((left, top, left + width, top + height))
            colours = region.getcolors(maxcolors=1 << 16)
            # A drawn chart has ink of many shades; a blank or broken image has one or two.
            assert colours is None or len(colours) > 8, chart["alt"]
