"""The HTML report of a sweep: built from a tiny real sweep (hinerv + x265 on a carphone crop), every figure
present, missing data shown as missing; and the page loaded in a real browser (headless Chromium)."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from codec.clips import make_clip
from eval import report, sweep

ROOT = Path(__file__).resolve().parents[2]
QPS = [22, 27, 32, 37]
FAST = dict(epochs=2, prune_epochs=1, qat_epochs=1)


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """Two sequences, each with two hinerv points and four x265 points."""
    d = tmp_path_factory.mktemp("report")
    clips = [d / "carphone.y4m", d / "other.y4m"]
    make_clip(clips[0], frames=4, crop=(40, 32, 64, 48))
    make_clip(clips[1], frames=4, crop=(96, 64, 64, 48))
    out = d / "sweep"
    summary = sweep.run_sweep([sweep.clip_input(c) for c in clips], out,
                              sweep.hinerv_points(["xxs"], [3000], **FAST), {"x265": QPS}, progress=False)
    assert not summary.failed
    return out


def _figures(page: str) -> list[str]:
    return re.findall(r'<div id="(fig\d+)" class="plotly-graph-div"', page)


def test_every_figure_is_on_the_page_of_a_small_run(swept, tmp_path) -> None:
    path = report.write_report(swept, tmp_path / "r.html")
    page = path.read_text()
    # average + 2 sequences of RD curves, and per sequence: per-frame PSNR and the bytes
    assert len(_figures(page)) == 3 + 2 * 2
    assert page.count('<figure class="crop"><img src="data:image/png;base64,') == 2 * 2 * 3  # 2 points x 3 each
    assert "crop missing" not in page
    assert "<script src=" not in page and "http://" not in page.split("<body>")[1]  # nothing fetched
    assert page.count('<table class="bd">') == 1 and "carphone" in page and "x265" in page
    for key in ("PSNR-YUV (dB)", "PSNR-Y (dB)", "MS-SSIM (Y)", "per-frame PSNR-YUV", "bytes per part"):
        assert key in page
    assert "No context record for carphone" in page


def test_missing_data_is_shown_missing_not_zero(swept, tmp_path) -> None:
    run = tmp_path / "run"
    shutil.copytree(swept, run)
    (run / "sequences.json").unlink()  # a sweep made before the report: its sources unknown
    rec_path = run / "points" / "carphone" / "hinerv" / "xxs.json"
    rec = json.loads(rec_path.read_text())
    rec["ms-ssim"], rec["macs_per_pixel"] = None, None
    del rec["per_frame_psnr_yuv"]
    rec_path.write_text(json.dumps(rec))
    for sample in (run / "points" / "other" / "x265").glob("*.frame.npz"):
        sample.unlink()
    page = report.build_page(report.load_run(run))
    row = re.search(r"<tr><td>carphone</td><td>hinerv</td><td>xxs</td>(.*?)</tr>", page).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
    assert cells[4] == report.MISSING and cells[8] == report.MISSING  # MS-SSIM and MACs/pixel
    assert "0.0000" not in row
    assert page.count("No crops: the source of this sequence is not known") == 2
    # the point without per-frame values has no trace; the other point and the anchors still do
    figure = _plot_data(page, "carphone: per-frame PSNR-YUV")
    names = [t["name"] for t in figure]
    assert not any(n.startswith("hinerv xxs") for n in names) and any(n.startswith("hinerv p3000") for n in names)
    rd = _plot_data(page, '"text":"carphone"')
    ssim = [t for t in rd if t.get("xaxis") == "x3" and t["name"] == "hinerv"]
    assert ssim and None in ssim[0]["y"] and 0 not in ssim[0]["y"]  # a gap, not a zero


def _plot_data(page: str, marker: str) -> list[dict]:
    """The traces of the plotly figure whose layout contains ``marker``."""
    for match in re.finditer(r"Plotly\.newPlot\(\s*\"fig\d+\",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{\"responsive", page,
                             re.S):
        if marker in match.group(2):
            return json.loads(match.group(1))
    raise AssertionError(f"no figure with {marker!r}")


def test_helpers() -> None:
    recs = [{"bpp": 0.1}, {"bpp": 0.2}, {"bpp": 0.8}]
    assert report.nearest(recs, 0.14)["bpp"] == 0.1 and report.nearest(recs, 0.15)["bpp"] == 0.2
    assert report.nearest([], 0.1) is None
    assert report.layer_of("stages.0.blocks.1.fc1.weight") == "stages.0.blocks.1"
    assert report.layer_of("stages.1.encoding.grids.0") == "stages.1.encoding"
    assert report.layer_of("grid.grids.0") == "grid" and report.layer_of("head.bias") == "head"
    assert report.crop_window(176, 144) == (24, 8, 128, 128) and report.crop_window(64, 48) == (0, 0, 64, 48)


def test_the_bytes_add_up_to_the_file(swept) -> None:
    from codec.info import describe_file

    path = swept / "points" / "carphone" / "hinerv" / "xxs.bin"
    parts = report.byte_breakdown(describe_file(path))
    assert sum(parts.values()) == path.stat().st_size and parts["header"] > 0


def test_cli_writes_the_page_and_refuses_a_folder_that_is_not_a_sweep(swept, tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-m", "eval.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                       text=True, env=env)
    assert r.returncode == 2 and r.stderr.strip() == f"error: {tmp_path} is not a sweep folder (no points/ in it)"
    r = subprocess.run([sys.executable, "-m", "eval.report", str(swept), "-o", str(tmp_path / "x.html")], cwd=ROOT,
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.startswith("report: file://") and (tmp_path / "x.html").stat().st_size


# --------------------------------------------------------------------------------------------- in a browser


def _browser():
    """Headless Chromium through chromedriver (both Debian's, installed by ``make test``); skipped where they are
    missing, except under CI, where the test setup installs them and their absence is a failure."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("CI"):
            pytest.fail("CI must have chromium and chromedriver (make test installs them: tools/install_browser.sh)")
        pytest.skip("no chromium/chromedriver here (tools/install_browser.sh installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def test_the_page_renders_in_a_real_browser(swept, tmp_path) -> None:
    from PIL import Image

    path = report.write_report(swept, tmp_path / "report.html")
    browser = _browser()
    try:
        browser.get(path.resolve().as_uri())
        browser.execute_script("return document.fonts ? document.fonts.ready : null")
        sizes = browser.execute_script(
            "return Array.from(document.querySelectorAll('.js-plotly-plot')).map(e => {"
            "const r = e.getBoundingClientRect(); return [e.id, r.width, r.height,"
            " e.querySelectorAll('.main-svg').length]; })")
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight])")
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        shot = tmp_path / "shot.png"
        browser.save_screenshot(str(shot))
    finally:
        browser.quit()
    assert errors == []
    assert len(sizes) == 7 and all(w > 100 and h > 100 and svgs > 0 for _, w, h, svgs in sizes), sizes
    assert len(images) == 12 and all(ok and w > 0 and h > 0 for ok, w, h in images)
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.std() > 10  # not a blank page: text, curves and axes drawn


def test_context_joins_a_sweep_and_the_page_shows_it(swept, tmp_path) -> None:
    from eval.context import context_sweep

    run = tmp_path / "run"
    shutil.copytree(swept, run)
    md = context_sweep(run).read_text()
    for part in ("## By what", "## By si", "## Coverage", "## Spearman", "| carphone |", "| other |"):
        assert part in md
    rec = json.loads((run / "context" / "carphone.json").read_text())
    assert rec["si"] > 0 and rec["ti"] > 0 and rec["frames"] == 4 and rec["where"] == "vehicle"
    page = report.build_page(report.load_run(run))
    assert "No context record" not in page and "<th>si</th>" in page
