"""Headless Chromium (Debian's chromium + chromium-driver, driven by selenium) for report tests.

    with Browser() as browser:
        page = browser.open(report_html)
        assert page.errors == [] and page.outside == []
        drawn = ink(browser.screenshot("#trend svg"))
        assert drawn.fraction > 0.02 and drawn.colours >= 3

Nothing leaves the machine. Chromium resolves no host name or address
(``--host-resolver-rules``), so a page's request to the network fails at once, and is still
listed in ``PageReport.requests`` and ``.outside``. Selenium Manager is never run: the
chromedriver path is given explicitly, and ``SE_OFFLINE`` forbids downloads should it ever be.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import reduce
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageChops
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WINDOW = (1280, 2000)
PAGE_LOAD_TIMEOUT = 30  # seconds; a request that hangs fails the page instead of the run
LOCAL_SCHEMES = frozenset({"file", "data", "about", "blob"})
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    # Even with the flags above Chromium looks up accounts.google.com, clients2.google.com,
    # update.googleapis.com and its search engine at start: resolve nothing, IP literals included.
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
# Resolves once two animation frames have passed: what scripts draw on load is on screen.
_AFTER_TWO_FRAMES = """
const done = arguments[arguments.length - 1];
requestAnimationFrame(() => requestAnimationFrame(() => done()));
"""


def find_browser() -> tuple[Path, Path] | None:
    """(chromium, chromedriver) if both exist; B12SCREEN_CHROMIUM / _CHROMEDRIVER override."""
    chromium = Path(os.environ.get("B12SCREEN_CHROMIUM") or CHROMIUM)
    chromedriver = Path(os.environ.get("B12SCREEN_CHROMEDRIVER") or CHROMEDRIVER)
    if chromium.is_file() and chromedriver.is_file():
        return chromium, chromedriver
    return None


@dataclass
class PageReport:
    """What loading one page did."""

    title: str
    console: list[dict]  # every browser log entry: level, message, source, timestamp
    errors: list[dict]  # SEVERE entries: console.error, uncaught exceptions, failed loads
    requests: list[str]  # every URL requested, the page itself first
    outside: list[str]  # requests that would leave the machine (not file/data/about/blob)


@dataclass(frozen=True)
class Ink:
    """What a screenshot shows beyond its background."""

    fraction: float  # share of pixels that differ from the background
    colours: int  # hues, plus one for greys, each covering at least min_share of the ink
    bbox: tuple[int, int, int, int] | None  # (left, top, right, bottom) of the ink; None if blank


class Browser:
    """One headless Chromium with a throw-away profile; use as a context manager."""

    def __init__(self, page_load_timeout: float = PAGE_LOAD_TIMEOUT) -> None:
        found = find_browser()
        if found is None:
            raise RuntimeError(
                "headless Chromium not installed (apt-get install chromium chromium-driver)"
            )
        chromium, chromedriver = found
        os.environ["SE_OFFLINE"] = "true"
        self.page_load_timeout = page_load_timeout
        self._profile = Path(tempfile.mkdtemp(prefix="b12screen-chromium-"))
        options = webdriver.ChromeOptions()
        options.binary_location = str(chromium)
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--window-size={WINDOW[0]},{WINDOW[1]}")
        options.add_argument(f"--user-data-dir={self._profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        try:
            self.driver = webdriver.Chrome(
                service=Service(executable_path=str(chromedriver)), options=options
            )
        except BaseException:
            shutil.rmtree(self._profile, ignore_errors=True)
            raise
        self.driver.set_page_load_timeout(page_load_timeout)
        # Chromium starts on its new-tab page, whose chrome:// requests would be the first
        # page's: leave it before any page is opened.
        self.driver.get("about:blank")

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Quit Chromium and delete its profile."""
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self._profile, ignore_errors=True)

    def open(self, path: Path) -> PageReport:
        """Load a local file, wait until it is complete and drawn, report what happened."""
        self.driver.get_log("browser")  # drop what earlier pages (and the start page) logged
        self.driver.get_log("performance")
        timed_out = []
        try:
            self.driver.get(Path(path).resolve().as_uri())
        except TimeoutException:
            self.driver.execute_script("window.stop()")
            message = f"page load took over {self.page_load_timeout} s"
            timed_out.append({"level": "SEVERE", "source": "harness", "message": message})
        WebDriverWait(self.driver, self.page_load_timeout).until(
            lambda driver: driver.execute_script("return document.readyState") == "complete"
        )
        self.driver.execute_async_script(_AFTER_TWO_FRAMES)
        console = self.driver.get_log("browser")
        requests = _requested_urls(self.driver.get_log("performance"))
        return PageReport(
            title=self.driver.title,
            console=console,
            errors=[entry for entry in console if entry["level"] == "SEVERE"] + timed_out,
            requests=requests,
            outside=[url for url in requests if urlsplit(url).scheme not in LOCAL_SCHEMES],
        )

    def screenshot(self, selector: str) -> bytes:
        """PNG of the first element matching a CSS selector, scrolled into view."""
        element = self.driver.find_element(By.CSS_SELECTOR, selector)
        self.driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
        return element.screenshot_as_png

    def full_screenshot(self, path: Path) -> bytes:
        """PNG of the whole page (not only the window), written to ``path`` and returned."""
        size = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
        )
        png = base64.b64decode(shot["data"])
        Path(path).write_bytes(png)
        return png


def _requested_urls(performance_log: list[dict]) -> list[str]:
    """URLs of the requests (and web sockets) in chromedriver's performance log."""
    urls = []
    for entry in performance_log:
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
        elif message["method"] == "Network.webSocketCreated":
            urls.append(message["params"]["url"])
    return urls


def ink(
    png: bytes,
    background: tuple[int, int, int] = (255, 255, 255),
    tolerance: int = 8,
    min_share: float = 0.01,
) -> Ink:
    """How much of a screenshot is drawn, in how many colours, and where.

    A pixel is ink when a channel differs from the background by more than ``tolerance``.
    Colours are hues (24 steps of 15 degrees) plus one for all greys and blacks, each counted
    when it covers ``min_share`` of the ink. Anti-aliasing blends a colour with a grey or white
    background, which keeps its hue: one black label or one blue line counts once, not as the
    dozen shades at its edges.
    """
    image = Image.open(io.BytesIO(png)).convert("RGB")
    difference = ImageChops.difference(image, Image.new("RGB", image.size, background))
    mask = reduce(ImageChops.lighter, difference.split()).point(
        lambda v: 255 if v > tolerance else 0
    )
    inked = mask.histogram()[255]
    if inked == 0:
        return Ink(fraction=0.0, colours=0, bbox=None)
    hue, saturation, value = image.convert("HSV").split()
    vivid = saturation.point(lambda v: 255 if v >= 64 else 0)  # below a quarter: a grey
    lit = value.point(lambda v: 255 if v >= 32 else 0)  # near black the hue is noise
    coloured = ImageChops.multiply(mask, ImageChops.multiply(vivid, lit))
    hues = hue.point(lambda v: v * 24 // 256).histogram(mask=coloured)[:24]
    greys = inked - sum(hues)
    colours = sum(count >= min_share * inked for count in [*hues, greys])
    return Ink(fraction=inked / (image.width * image.height), colours=colours, bbox=mask.getbbox())
