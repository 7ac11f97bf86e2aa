"""The Snakemake report of the tiny study, opened in a real headless browser:
Debian's chromium, driven by selenium through Debian's chromedriver.

Every category is clicked open, every figure shown the way a reader shows it
(the eye button), and the browser must have decoded each PNG at the size of
its file, with something drawn on it; every caption and the study's config are
in the report. Screenshots are saved in the study's results/tiny/screenshots/.
"""

import base64
import io
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import copy_of, debian_packages, snakemake

pytestmark = pytest.mark.slow

CATEGORIES = ["1. Overview", "2. Data and training", "3. Consistency",
              "4. Similarity measures", "5. Study settings"]
MEASURES = ("linear_cka", "procrustes")  # those of tiny.yaml
FIGURES = ("overview", "consistency", "mds", "clusters", "instance_mds", "training",
           "reconstructions") + tuple(
    f"{m}_{view}" for m in MEASURES for view in ("layers", "seeds", "epochs"))
# Seconds before a wait gives up: only a guard against a hung page. On a loaded
# 2-core machine (CI, other test runs) chromium loads, renders and decodes the
# report many times slower than on an idle one.
TIMEOUT = 120


def chromium():
    """Paths of Debian's chromium and chromedriver, installed when missing."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found
    debian_packages("chromium", "chromium-driver")
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tiny_study, tmp_path_factory):
    """The tiny study, run to the end, and its report: (study folder, report path)."""
    root = copy_of(tiny_study, tmp_path_factory.mktemp("report") / "workflow")
    snakemake(root, "--configfile", "tiny.yaml", "--report", "results/tiny/report.html")
    return root / "results" / "tiny", root / "results" / "tiny" / "report.html"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver = chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1000", "--hide-scrollbars"):
        options.add_argument(arg)
    # The given chromedriver: selenium must not look for (or download) one.
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(TIMEOUT)
    yield browser
    browser.quit()


def wait_for(browser, find, what, timeout=TIMEOUT):
    """Poll `find(browser)` until it returns something true."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if found := find(browser):
                return found
        except Exception:  # the page is still rendering
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def open_report(browser, path):
    from selenium.webdriver.common.by import By

    browser.get(path.as_uri())
    wait_for(browser, lambda b: b.find_element(By.LINK_TEXT, "Statistics"), "the report's menu")


def still(browser):
    """No CSS transition is running: the navbar animates its width when the
    view changes (menu, category, result info), and its links move with it."""
    return browser.execute_script("return !document.getAnimations().some("
                                  "a => a instanceof CSSTransition && a.playState === 'running')")


def click(browser, find, what):
    """Click what `find(browser)` returns once it is displayed and the page is
    still, trying again if the click fails all the same. A click aimed at a
    link while the navbar's transition moves it lands on whatever has moved
    under the pointer (selenium: "element click intercepted"): on a loaded
    machine the driver's steps from finding the link to clicking it take long
    enough to span a transition. The report's views have no URL to go to
    instead (its links are all href="#", its views React state), and opening
    them as a reader does is what the test checks."""
    def aim_and_click(b):
        element = find(b)
        if element.is_displayed() and element.is_enabled() and still(b):
            element.click()
            return True
        return False
    wait_for(browser, aim_and_click, what)


def click_text(browser, text):
    from selenium.webdriver.common.by import By

    click(browser, lambda b: b.find_element(By.LINK_TEXT, text), f"a link {text!r} to click")


def click_info(browser, row):
    """Click the info button of a row of the results table on screen."""
    from selenium.webdriver.common.by import By

    click(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "a[iconname=information-circle]")[row],
          f"the info button of row {row}")


def png_size(path):
    """(width, height) from a PNG file's IHDR chunk."""
    head = Path(path).read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def drawn_fraction(png_bytes):
    """Fraction of pixels that are not (nearly) white, and distinct colours."""
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png_bytes)).convert("RGB")).reshape(-1, 3)
    return (pixels.min(axis=1) < 235).mean(), len(np.unique(pixels, axis=0))


def result_rows(browser):
    """The eye and info buttons of each row of the results table on screen."""
    from selenium.webdriver.common.by import By

    return wait_for(browser, lambda b: list(zip(
        b.find_elements(By.CSS_SELECTOR, "a[iconname=eye]"),
        b.find_elements(By.CSS_SELECTOR, "a[iconname=information-circle]"))), "a results table")


def decoded_png(browser):
    """The figure on display, once decoded: an <img> whose source is an embedded PNG."""
    from selenium.webdriver.common.by import By

    for img in browser.find_elements(By.CSS_SELECTOR, "img[src^='data:image/png']"):
        if browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                  img):
            return img
    return None


def show(browser, row, selector="a[iconname=eye]"):
    """Click the eye button of a row (as often as it takes: the table may still
    be re-rendering) until the figure is on display; the figure's <img>."""
    from selenium.webdriver.common.by import By

    def click_and_look(b):
        click(b, lambda b: b.find_elements(By.CSS_SELECTOR, selector)[row],
              f"the eye button of row {row}")
        end = time.monotonic() + 2
        while time.monotonic() < end:
            if img := decoded_png(b):
                return img
            time.sleep(0.1)
        return None
    return wait_for(browser, click_and_look, f"figure {row} of the table on display")


def test_report_renders_every_figure_with_its_caption(report, browser):
    from selenium.webdriver.common.by import By

    study, path = report
    shots = study / "screenshots"
    shots.mkdir(exist_ok=True)
    open_report(browser, path)
    # the workflow description (report: directive), rendered with the study's config
    main_text = browser.find_element(By.TAG_NAME, "body").text
    assert "hourglass: study tiny" in main_text and "linear_cka, procrustes" in main_text
    browser.save_screenshot(shots / "home.png")
    menu = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav a") if a.text in CATEGORIES]
    assert menu == CATEGORIES, "categories missing or out of order"
    categories = browser.execute_script(
        "return Object.fromEntries(Object.entries(categories).map(([c, s]) => [c, Object.keys(s)]))")
    assert sorted(categories) == CATEGORIES
    assert sorted(categories["4. Similarity measures"]) == sorted(MEASURES)

    seen = {}
    for category in CATEGORIES[:4]:
        for subcategory in categories[category]:
            open_report(browser, path)
            click_text(browser, category)
            if subcategory != "Other":
                click_text(browser, subcategory)
            for i in range(len(result_rows(browser))):
                img = show(browser, i)
                src = img.get_attribute("src")
                name = src.split("filename=", 1)[1].split(";", 1)[0]
                figure = name.removesuffix(".png")
                natural = browser.execute_script(
                    "return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
                # the browser decoded the whole embedded file, byte for byte the one on disk
                assert base64.b64decode(src.split("base64,", 1)[1]) == \
                    (study / "figures" / name).read_bytes()
                assert tuple(natural) == png_size(study / "figures" / name), name
                assert natural[0] >= 200 and natural[1] >= 100, f"{name} is too small: {natural}"
                assert img.size["width"] > 0 and img.size["height"] > 0, f"{name} is not displayed"
                drawn, colours = drawn_fraction(img.screenshot_as_png)
                assert drawn > 0.02 and colours > 20, f"{name} looks blank: {drawn:.3f} drawn, {colours} colours"
                browser.save_screenshot(shots / f"{figure}.png")
                # its caption, shown by the info button
                click_info(browser, i)
                caption = wait_for(browser, lambda b: "DESCRIPTION" in b.find_element(
                    By.TAG_NAME, "nav").text and b.find_element(By.TAG_NAME, "nav").text,
                    f"the caption of {name}")
                assert f"python -m hourglass figure {figure}" in caption, caption
                # the figure's own text, not only the common last lines
                assert len(caption.split("DESCRIPTION", 1)[1].split("Drawn by")[0]) > 250, caption
                seen[figure] = category
                open_report(browser, path)
                click_text(browser, category)
                if subcategory != "Other":
                    click_text(browser, subcategory)
    assert set(seen) == set(FIGURES)
    assert seen["overview"] == "1. Overview"
    assert all(seen[f"{m}_{v}"] == "4. Similarity measures"
               for m in MEASURES for v in ("layers", "seeds", "epochs"))

    # The study's effective config, a download in its own category
    open_report(browser, path)
    click_text(browser, "5. Study settings")
    eye, _ = result_rows(browser)[0]
    href = eye.get_attribute("href")
    assert "filename=config.yaml" in href
    config = yaml.safe_load(base64.b64decode(href.split("base64,", 1)[1]))
    assert config["study"] == "tiny" and config["training"]["patience"] == 2
    assert config == yaml.safe_load((study / "config.yaml").read_text())

    # Snakemake's runtime statistics: a chart per rule, the runtimes on a log
    # scale, which a job with no positive runtime blanks
    open_report(browser, path)
    runtimes = browser.execute_script("return runtimes_spec.data.values")
    assert {r["rule"] for r in runtimes} >= {"train", "figure", "study_config"}
    assert all(r["runtime"] > 0 for r in runtimes), runtimes
    click_text(browser, "Statistics")
    # vega adds a chart's canvas, then draws on it: wait for the drawing, not a
    # second (which a loaded machine may need more than)
    wait_for(browser, lambda b: b.execute_script(
        "const marks = [...document.querySelectorAll('canvas.marks, svg.marks')];"
        "return marks.length > 0 && marks.every(m => m.tagName === 'svg' ? m.childElementCount > 0"
        " : m.getContext('2d').getImageData(0, 0, m.width, m.height).data.some(v => v > 0))"),
        "the runtime charts drawn")
    browser.save_screenshot(shots / "statistics.png")

    # The screenshot for people: the overview on display, its caption beside it
    open_report(browser, path)
    click_text(browser, "1. Overview")
    click_info(browser, 0)
    show(browser, 0, "nav a[iconname=eye]")
    browser.save_screenshot(shots / "report.png")
    print(f"screenshots in {shots}")
