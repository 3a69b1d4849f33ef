"""A headless Chromium renders `bigbigan report`'s page from disk with every embedded image loaded.

Skipped only when no Chromium/Chrome binary is on PATH (scripts/test.sh installs Debian's ``chromium``).
"""

import html
import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from bigbigan.cli import main

pytestmark = pytest.mark.slow  # a headless browser in a subprocess

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 60

# Appended to a copy of the page: once everything has loaded, report which <img> elements decoded.
CHECK_SCRIPT = """<script>
window.addEventListener("load", function () {
  var imgs = Array.from(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0 && i.naturalHeight > 0; });
  var out = document.createElement("pre");
  out.id = "img-check";
  out.textContent = "IMG-CHECK " + JSON.stringify({
    loaded: ok.length, total: imgs.length,
    shown: imgs.filter(function (i) { return i.getBoundingClientRect().width > 0; }).length,
    broken: imgs.filter(function (i) { return ok.indexOf(i) < 0; }).map(function (i) { return i.alt; }),
    page_width: document.documentElement.scrollWidth, window_width: window.innerWidth});
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium(browser, profile, *args):
    # --no-sandbox: Chromium refuses to start as root with its sandbox; --disable-dev-shm-usage: small /dev/shm in
    # containers; a fresh profile per call keeps runs independent of each other and of any desktop profile.
    cmd = [browser, "--headless", "--disable-gpu", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
           f"--user-data-dir={profile}", "--hide-scrollbars", "--virtual-time-budget=5000", *args]
    try:
        res = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{browser} did not finish within {TIMEOUT_S} s: {' '.join(cmd)}")
    assert res.returncode == 0, f"{' '.join(cmd)} exited {res.returncode}:\n{res.stderr[-2000:]}"
    return res


def test_report_renders_in_headless_chromium_with_every_image(tmp_path, train_tiny):
    browser = _browser()
    if browser is None:
        pytest.skip(f"no headless browser on PATH (looked for {', '.join(BROWSERS)}); "
                    "install Debian's chromium (scripts/test.sh does as root)")
    run = tmp_path / "run"
    train_tiny(run)
    assert main(["eval", str(run), "--metrics", "linear,knn,recon", "--probe-steps", "50"]) == 0
    assert main(["report", str(run)]) == 0
    page = run / "report" / "index.html"

    # Open copies in a folder of their own: the page must not need the PNGs written beside it.
    alone = tmp_path / "alone"
    alone.mkdir()
    text = page.read_text()
    assert "</body>" in text
    (alone / "index.html").write_text(text)
    (alone / "check.html").write_text(text.replace("</body>", CHECK_SCRIPT + "</body>"))

    # A narrow window: long paths (title, checkpoint) and wide plots must still fit without scrolling sideways.
    dom = _chromium(browser, tmp_path / "profile1", "--window-size=800,1200", "--dump-dom",
                    (alone / "check.html").as_uri()).stdout
    found = re.search(r"IMG-CHECK (\{.*?\})</pre>", dom)
    assert found, f"the check script did not run (no load event?); DOM starts:\n{dom[:500]}"
    check = json.loads(html.unescape(found.group(1)))
    assert check["total"] >= 6, check  # curves, samples, reconstructions, interpolations, neighbours, filters
    assert check["loaded"] == check["total"], check
    assert check["shown"] == check["total"], check
    assert check["page_width"] <= check["window_width"], check  # nothing forces a horizontal scrollbar
    assert "linear_avepool_top1" in dom and "knn_d1_k25_top1" in dom and "rel_l1" in dom  # cell tooltips
    for heading in ("Summary", "Representation", "Reconstruction"):
        assert f">{heading}" in dom, heading

    # New headless mode paints a viewport ~140 px shorter than the window, so the screenshot ends in a blank strip.
    shot = tmp_path / "report.png"
    _chromium(browser, tmp_path / "profile2", f"--screenshot={shot}", "--window-size=1280,2400",
              (alone / "index.html").as_uri())
    assert shot.is_file(), "no screenshot written"
    with Image.open(shot) as im:
        assert im.size == (1280, 2400), im.size
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50, f"screenshot looks blank: {len(colours)} colours"
    white = max(colours, key=lambda c: c[0])[0] / (1280 * 2400) if colours else 0.0
    assert white < 0.97, f"screenshot is {white:.1%} one colour"
