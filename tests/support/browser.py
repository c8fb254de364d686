"""Headless Chromium driven by selenium, for the browser tests: the system Chromium through
``/usr/bin/chromedriver`` (Debian: ``apt-get install chromium chromium-driver``).

- ``missing_browser()``: why a browser cannot be driven here, or None (the tests skip with it,
  which fails them under ``CI=true``).
- ``open_chromium(size)``: a headless session that keeps every browser console entry.

Imported by tests and by ``scripts/docs-images``: PYTEST_DONT_REWRITE.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # reported by missing_browser()
    webdriver = None

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROME_ARGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage")
WINDOW_SIZE = (1280, 800)


def missing_browser() -> str | None:
    """Why a browser cannot be driven here, or None."""
    if webdriver is None:
        return "selenium is not installed (it is pinned in requirements.txt)"
    if shutil.which("chromium") is None:
        return "Chromium is not installed (Debian: apt-get install chromium)"
    if not Path(CHROMEDRIVER).exists():
        return f"no chromedriver at {CHROMEDRIVER} (Debian: apt-get install chromium-driver)"
    return None


def open_chromium(size: tuple[int, int] = WINDOW_SIZE) -> Any:
    """A headless Chromium session that keeps every console entry."""
    options = webdriver.ChromeOptions()
    for arg in CHROME_ARGS:
        options.add_argument(arg)
    options.add_argument(f"--window-size={size[0]},{size[1]}")
    options.binary_location = shutil.which("chromium")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
