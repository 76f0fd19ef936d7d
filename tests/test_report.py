"""`bench report`: content checked against the CSVs, and the page checked in a real browser."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fakeruns import make_run, two_experiments
from PIL import Image

from bench.report.run import build_report


def _table_values(html: str) -> dict[tuple[str, str], float]:
    out = {}
    for row in re.findall(r'<tr data-optimizer="([^"]+)">(.*?)</tr>', html, re.S):
        for metric, value in re.findall(r'data-metric="([^"]+)" data-value="([^"]*)"', row[1]):
            out[(row[0], metric)] = float(value) if value else float("nan")
    return out


def _expected_final(run_dir: Path, opt: str, seeds, steps: int, loss: str) -> float:
    per_seed = []
    for s in seeds:
        df = pd.read_csv(run_dir / f"runs/{opt}-seed{s}/metrics.csv")
        df = df[df.status == "ok"]
        if len(df):
            n = int(np.ceil(steps * 0.1))
            per_seed.append(df[df.step > df.step.max() - n][loss].mean())
    return float(np.median(per_seed))


def _check_embedded_images(html: str) -> int:
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', html)
    assert srcs
    for src in srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]  # nothing to fetch: works when copied anywhere
        Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))).verify()
    return len(srcs)


@pytest.mark.parametrize("seeds", [(0,), (0, 1, 2)])
def test_report_table_equals_numbers_from_csv(tmp_path, seeds):
    run_dir = make_run(tmp_path / "results", optimizers=("sgd", "rmsprop", "adam"), seeds=seeds, steps=60)
    page = build_report(run_dir, tmp_path / "reports")
    assert page == tmp_path / "reports/fake/20260101-000000/index.html"
    html = page.read_text()
    values = _table_values(html)
    for opt in ("sgd", "rmsprop", "adam"):
        assert f'data-optimizer="{opt}"' in html
        for loss in ("d_loss_real", "d_loss_fake", "g_loss"):
            assert values[(opt, loss)] == pytest.approx(_expected_final(run_dir, opt, seeds, 60, loss), rel=1e-12)
        times = [1000 * pd.read_csv(run_dir / f"runs/{opt}-seed{s}/metrics.csv").step_seconds.iloc[1:].median() for s in seeds]
        assert values[(opt, "ms_per_step")] == pytest.approx(float(np.median(times)))
    assert ('<span class="spread">' in html) == (len(seeds) > 1)  # IQR across seeds only when there are seeds
    assert "Finished: every run completed." in html
    # images: 3 loss/D figures + diversity + a filmstrip per seed + the real grid, all embedded
    n = _check_embedded_images(html)
    assert n >= 5 + len(seeds) * 3
    index = (tmp_path / "reports/index.html").read_text()
    assert 'href="fake/20260101-000000/index.html"' in index


def test_report_quality_columns_equal_final_values_from_quality_csv(tmp_path):
    run_dir = make_run(tmp_path / "results", optimizers=("sgd", "adam"), seeds=(0, 1, 2), steps=60, quality=True)
    html = build_report(run_dir, tmp_path / "reports").read_text()
    values = _table_values(html)
    assert 'id="quality"' in html and "SWD ↓" in html and "FD-PCA ↓" in html
    for opt in ("sgd", "adam"):
        for metric in ("swd", "fd_pca", "kid_pca", "coverage"):
            finals = []
            for s in (0, 1, 2):
                q = pd.read_csv(run_dir / f"runs/{opt}-seed{s}/quality.csv")
                finals.append(q[(q.metric == metric) & (q.step == q.step.max())].value.iloc[0])
            assert values[(opt, metric)] == pytest.approx(float(np.median(finals)))
    _check_embedded_images(html)


def test_report_flags_a_diverged_run(tmp_path):
    run_dir = make_run(tmp_path / "results", optimizers=("sgd", "adam"), seeds=(0, 1), steps=60,
                       diverge={("sgd", 1): 17}, state="finished-with-divergence")
    html = build_report(run_dir, tmp_path / "reports").read_text()
    assert "some runs diverged" in html
    assert "diverged in 1/2 seeds (step 17)" in html
    values = _table_values(html)
    # the diverged seed contributes its finite part; the numbers stay finite and match the CSVs
    assert values[("sgd", "d_loss_real")] == pytest.approx(_expected_final(run_dir, "sgd", (0, 1), 60, "d_loss_real"))
    assert np.isfinite(values[("adam", "g_loss")])
    _check_embedded_images(html)


def test_report_of_a_run_cut_short(tmp_path):
    run_dir = make_run(tmp_path / "results", steps=100, cut_at=35, state="running")
    html = build_report(run_dir, tmp_path / "reports").read_text()
    assert "Run was cut short (35/100 iterations" in html
    assert "not finished (interrupted)" in html
    _check_embedded_images(html)


@pytest.mark.integration
def test_index_lists_reports_newest_first(tmp_path):
    for rid in ("20260101-000000", "20260301-000000", "20260201-000000"):
        build_report(make_run(tmp_path / "results", run_id=rid), tmp_path / "reports")
    index = (tmp_path / "reports/index.html").read_text()
    order = re.findall(r'href="fake/([^/]+)/index.html"', index)
    assert order == ["20260301-000000", "20260201-000000", "20260101-000000"]


@pytest.mark.integration
def test_report_never_imports_tensorflow(tmp_path):
    run_dir = make_run(tmp_path / "results")
    code = ("import sys; from bench.report.run import build_report; "
            f"build_report({str(run_dir)!r}, {str(tmp_path / 'r')!r}); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'")
    subprocess.run([os.sys.executable, "-c", code], check=True, timeout=120)


def test_report_cli_bad_folder(cli, tmp_path):
    r = cli("report", tmp_path / "nothing")
    assert r.code == 2 and "not found" in r.err


def _browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("Debian's chromium and chromium-driver are not installed (make test installs them where apt works)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.mark.integration
def test_report_in_headless_chromium(tmp_path):
    run_dir = make_run(tmp_path / "results", optimizers=("sgd", "rmsprop", "adam"), seeds=(0, 1), steps=80,
                       diverge={("rmsprop", 1): 50}, state="finished-with-divergence")
    page = build_report(run_dir, tmp_path / "reports")
    browser = _browser()
    try:
        browser.get(page.as_uri())
        assert browser.title.startswith("bench · fake")
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.alt)")
        assert broken == []
        assert browser.execute_script("return document.images.length") >= 10
        errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        assert errors == []
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, min(height + 50, 6000))
        shot = Path(os.environ.get("BENCH_SCREENSHOT_DIR", tmp_path)) / "report.png"
        assert browser.save_screenshot(str(shot))
        img = Image.open(shot)
        assert img.width >= 1000 and img.height >= 1500
        # the page is not blank: plenty of distinct colours
        assert len(img.convert("RGB").getcolors(1 << 20) or []) > 500
        browser.get((tmp_path / "reports/index.html").as_uri())
        assert browser.find_element("link text", "20260101-000000")
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    finally:
        browser.quit()


@pytest.mark.integration
def test_verdict_and_leaderboard_in_headless_chromium(cli, tmp_path):
    runs = two_experiments(tmp_path / "results")
    for run in runs:
        assert cli("report", run, "--reports", tmp_path / "reports").code == 0
    browser = _browser()
    shots = Path(os.environ.get("BENCH_SCREENSHOT_DIR", tmp_path))
    try:
        browser.get((tmp_path / "reports/faces/20260101-000000/index.html").as_uri())
        verdict = browser.find_element("id", "verdict")
        summary = browser.find_element("xpath", "//h2[normalize-space()='Summary']")
        assert verdict.is_displayed() and verdict.location["y"] < summary.location["y"]  # the verdict comes first
        items = [li.text for li in browser.find_elements("css selector", "ul.verdict li")]
        assert "adam beats sgd on SWD in 6 of 6 seeds" in items[0]
        assert browser.find_element("css selector", "img[alt='paired differences over training']").size["width"] > 300
        assert browser.save_screenshot(str(shots / "verdict.png"))

        browser.get((tmp_path / "reports/index.html").as_uri())
        browser.find_element("link text", "Leaderboard").click()
        assert browser.title.startswith("bench · leaderboard")
        rows = [r.get_attribute("data-optimizer") for r in browser.find_elements("css selector", "tr[data-optimizer]")]
        assert set(rows) == {"sgd", "adam"}
        broken = browser.execute_script(
            "return Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length")
        assert broken == 0 and browser.execute_script("return document.images.length") >= 1
        assert [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")] == []
        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, min(height + 50, 4000))
        assert browser.save_screenshot(str(shots / "leaderboard.png"))
    finally:
        browser.quit()
