"""Headless chromium as a subprocess: the DOM after scripts ran, or a screenshot, of a 127.0.0.1 page.

Started with every background-network feature off, so it loads nothing but the URL it is given."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], url: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    assert url.startswith("http://127.0.0.1:"), f"chromium loads only local pages, not {url}"
    binary = find_chromium()
    assert binary, "chromium is not installed (tests/run installs it)"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [binary, *_FLAGS, f"--user-data-dir={profile}", *args, url],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )


def dump_dom(url: str, timeout_s: float = 45.0) -> str:
    """The page's DOM, serialized after its scripts ran."""
    done = _run(["--dump-dom"], url, timeout_s)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, path: Path, *, size: str = "1366,900", timeout_s: float = 45.0) -> Path:
    """A PNG of the page at `size` (width,height) in `path`."""
    done = _run([f"--screenshot={path}", f"--window-size={size}"], url, timeout_s)
    assert done.returncode == 0 and path.exists(), done.stderr[-2000:]
    return path
