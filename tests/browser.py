"""A real headless Chromium for the console tests (issue 11 "Must show"): Debian's chromium driven through
chromedriver by Selenium, one fresh profile per browser; screenshots saved under var/console-shots/."""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement

from tests.live import Key, Server

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SHOTS = Path(__file__).resolve().parent.parent / "var" / "console-shots"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
)  # fmt: skip
T = TypeVar("T")


def available() -> bool:
    """Whether Debian's chromium and chromium-driver are installed (`make console-tools`)."""
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium(width: int = 1280, height: int = 800) -> Iterator[WebDriver]:
    """A headless Chromium with a fresh profile, closed afterwards."""
    profile = Path(tempfile.mkdtemp(prefix="tione-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(what: Callable[[], T | None], timeout: float = 15.0, message: str = "") -> T:
    """Poll `what` until it returns something truthy (exceptions count as not yet); return that."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = what()
            if value:
                return value
        except Exception as err:  # an element between renders, say
            last = err
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message or what}: {last!r}")


def by_label(driver: WebDriver, label: str) -> WebElement:
    """The form control whose accessible name is `label` (a <label for> or aria-label)."""
    found = driver.execute_script(
        """const name = arguments[0];
        for (const l of document.querySelectorAll('label')) if (l.textContent.trim() === name && l.htmlFor)
          return document.getElementById(l.htmlFor);
        return document.querySelector(`[aria-label="${name}"]`);""",
        label,
    )
    assert found is not None, f"no control labelled {label!r}"
    return found  # type: ignore[no-any-return]


def button(driver: WebDriver, text: str, within: WebElement | None = None) -> WebElement:
    """The visible button whose text or accessible name is exactly `text`."""
    root: Any = within or driver
    for b in root.find_elements(By.TAG_NAME, "button"):
        if b.is_displayed() and (b.text.strip() == text or b.accessible_name.strip() == text):
            return b  # type: ignore[no-any-return]
    raise AssertionError(f"no button {text!r}")


def region(driver: WebDriver, label: str) -> WebElement:
    """The region (a section) labelled `label`."""
    return driver.find_element(By.CSS_SELECTOR, f'section[aria-label="{label}"]')


def alert_text(driver: WebDriver) -> str:
    """The text of the visible alerts (role=alert) on the page."""
    return " ".join(e.text for e in driver.find_elements(By.CSS_SELECTOR, '[role="alert"]') if e.text)


def sign_in(driver: WebDriver, server: Server, key: Key | None = None, *, secret: str | None = None) -> None:
    """Open the console and sign in with `key` (default: the server's); `secret` overrides its SecretKey."""
    k = key or server.key
    driver.get(f"http://{server.endpoint}/console/")
    if not driver.find_elements(By.CSS_SELECTOR, "form.signin"):
        button(driver, "Sign out").click()
    wait(lambda: driver.find_elements(By.CSS_SELECTOR, "form.signin"), message="the sign-in form")
    by_label(driver, "SecretId").send_keys(k.secret_id)
    by_label(driver, "SecretKey").send_keys(secret if secret is not None else k.secret_key)
    by_label(driver, "Region").send_keys("ap-guangzhou")
    button(driver, "Sign in").click()


def shot(driver: WebDriver, name: str) -> Path:
    """Save a screenshot of the whole page (up to 4000 px tall) as a test artifact and print its path."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 4000), "scale": 1}
    png = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True}
    )
    path.write_bytes(base64.b64decode(png["data"]))
    print(f"screenshot: {path}")
    return path
