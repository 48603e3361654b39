"""Drive the static leaderboard page in headless Chromium: sort, filter, provenance, plots, screenshot.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (installed by ``.ci/run``) and
selenium; skipped with the reason when they are absent. Set ``CRBENCH_SCREENSHOT_DIR`` to keep
the screenshots.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from crbench.detectors.base import Detector
from crbench.leaderboard import build, load_entries, submit

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")


class LocalContrast(Detector):
    """A cheap second detector: image minus its 5x5 median over the noise."""

    name = "local-contrast"

    def score(self, sample):
        import numpy as np
        from scipy import ndimage

        img = sample.image.astype(np.float32)
        med = ndimage.median_filter(img, size=5)
        return ((img - med) / np.sqrt(np.maximum(med, 1.0) + 16.0)).astype(np.float32)


def _driver(tmp_path):
    if not CHROMIUM or not DRIVER:
        pytest.skip("headless Chromium not installed (apt-get install -y chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1300,1500"):
        opts.add_argument(flag)
    opts.binary_location = CHROMIUM
    return webdriver.Chrome(options=opts, service=Service(DRIVER))


@pytest.fixture(scope="module")
def leaderboard(basic_dataset, tmp_path_factory):
    """A leaderboard with two detectors on sim-basic and two on a renamed copy (a second dataset)."""
    from crbench.harness import evaluate

    root = tmp_path_factory.mktemp("lb")
    res = evaluate(["median", LocalContrast()], basic_dataset, split="test", progress=False, out=root / "res")
    submit(root / "res", root / "entries")
    other = json.loads((root / "res" / "results.json").read_text())
    for k, run in enumerate(other["runs"]):
        run["dataset"] = run["summary"]["dataset"] = run["provenance"]["dataset"]["name"] = "sim-other"
        run["detector"] = run["summary"]["detector"] = f"{run['detector']}-v2"
        run["by_morphology"] = [{"morphology": "track", "n_crs": 20, "recall_half": 0.8 - 0.2 * k,
                                 "recall_half_lo": 0.7 - 0.2 * k, "recall_half_hi": 0.9 - 0.2 * k},
                                {"morphology": "spot", "n_crs": 30, "recall_half": 0.9}]
    (root / "res2").mkdir()
    (root / "res2" / "results.json").write_text(json.dumps(other))
    submit(root / "res2", root / "entries")
    build(root / "entries")
    return root, res


def _rows(d):
    from selenium.webdriver.common.by import By

    return [r for r in d.find_elements(By.CSS_SELECTOR, "#lb-table tbody tr.lb-row") if r.is_displayed()]


def _col(d, key):
    from selenium.webdriver.common.by import By

    return [r.find_element(By.CSS_SELECTOR, f'td[data-key="{key}"]') for r in _rows(d)]


def _screenshot(d, tmp_path, name):
    path = tmp_path / name
    d.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
    keep = os.environ.get("CRBENCH_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / name)
    return path


def test_sort_filter_provenance_and_plots(leaderboard, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    root, _ = leaderboard
    d = _driver(tmp_path)
    try:
        d.get((root / "index.html").as_uri())
        errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, errors
        # the page opens on the dataset with the most entries (a tie here: the first alphabetically)
        assert Select(d.find_element(By.ID, "dataset-filter")).first_selected_option.get_attribute("value") == \
            "sim-basic"
        assert [r.get_attribute("data-dataset") for r in _rows(d)] == ["sim-basic", "sim-basic"]
        Select(d.find_element(By.ID, "dataset-filter")).select_by_value("")
        assert len(_rows(d)) == 4
        assert d.find_element(By.ID, "row-count").text == "4 of 4 entries shown"
        # with every dataset listed, the curves are those of the top row's dataset only
        top = _rows(d)[0].get_attribute("data-dataset")
        curves = d.find_elements(By.CSS_SELECTOR, "#roc-plot polyline.curve")
        assert top == "sim-basic" and sorted(c.get_attribute("data-detector") for c in curves) == [
            "local-contrast", "median"]
        assert "Curves for sim-basic" in d.find_element(By.ID, "plot-note").text

        # sort by AP: best first, then toggled to ascending
        d.find_element(By.CSS_SELECTOR, 'th[data-key="ap"] button').click()
        values = [float(c.get_attribute("data-value")) for c in _col(d, "ap")]
        assert values == sorted(values, reverse=True) and len(set(values)) > 1
        assert d.find_element(By.CSS_SELECTOR, 'th[data-key="ap"]').get_attribute("aria-sort") == "descending"
        d.find_element(By.CSS_SELECTOR, 'th[data-key="ap"] button').click()
        values = [float(c.get_attribute("data-value")) for c in _col(d, "ap")]
        assert values == sorted(values)

        # sort by a text column
        d.find_element(By.CSS_SELECTOR, 'th[data-key="detector"] button').click()
        names = [c.text for c in _col(d, "detector")]
        assert names == sorted(names) == ["local-contrast", "local-contrast-v2", "median", "median-v2"]

        # dataset filter: only that dataset's rows, and its curves in both plots
        Select(d.find_element(By.ID, "dataset-filter")).select_by_value("sim-other")
        rows = _rows(d)
        assert [r.get_attribute("data-dataset") for r in rows] == ["sim-other", "sim-other"]
        assert d.find_element(By.ID, "row-count").text == "2 of 4 entries shown"
        assert not d.find_elements(By.CSS_SELECTOR, 'th[data-key="dataset"]')  # one dataset: column left out
        for plot in ("roc-plot", "pr-plot"):
            curves = d.find_elements(By.CSS_SELECTOR, f"#{plot} polyline.curve")
            assert sorted(c.get_attribute("data-detector") for c in curves) == ["local-contrast-v2", "median-v2"]

        # morphology filter: per-morphology columns, rows without such results hidden
        Select(d.find_element(By.ID, "dataset-filter")).select_by_value("")
        Select(d.find_element(By.ID, "morphology-filter")).select_by_value("track")
        assert d.find_elements(By.CSS_SELECTOR, 'th[data-key="recall_half"]')
        with_tracks = {e.run["detector"] for e in load_entries(root / "entries")
                       if any(m.get("morphology") == "track" for m in e.run.get("by_morphology") or [])}
        assert {"median-v2", "local-contrast-v2"} <= with_tracks
        assert {r.get_attribute("data-detector") for r in _rows(d)} == with_tracks
        d.find_element(By.CSS_SELECTOR, 'th[data-key="recall_half"] button').click()
        recalls = [float(c.get_attribute("data-value")) for c in _col(d, "recall_half")]
        assert recalls == sorted(recalls, reverse=True)
        v2 = [c.text for c in _col(d, "detector") if c.text.endswith("-v2")]
        assert v2 == ["median-v2", "local-contrast-v2"]  # 0.8 > 0.6
        assert any(c.text.startswith("0.800") for c in _col(d, "recall_half"))
        _screenshot(d, tmp_path, "leaderboard_morphology.png")
        Select(d.find_element(By.ID, "morphology-filter")).select_by_value("")

        # detector text filter
        box = d.find_element(By.ID, "detector-filter")
        box.send_keys("median")
        assert sorted(r.get_attribute("data-detector") for r in _rows(d)) == ["median", "median-v2"]
        box.clear()
        box.send_keys(" ")  # fire input; a blank filter matches nothing extra
        box.clear()
        d.execute_script("document.getElementById('detector-filter').dispatchEvent(new Event('input'))")
        assert len(_rows(d)) == 4

        # provenance on demand
        assert not d.find_elements(By.CSS_SELECTOR, "tr.prov-row")
        first = _rows(d)[0]
        first.find_element(By.CSS_SELECTOR, "button.prov-toggle").click()
        prov = d.find_element(By.CSS_SELECTOR, "tr.prov-row pre")
        assert "content_hash" in prov.text and "conventions" in prov.text
        _screenshot(d, tmp_path, "leaderboard.png")
    finally:
        d.quit()
