"""Test helpers for offline HTML: external-reference scan, headless Chromium screenshots, PNG pixels."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

_URL_ATTRS = {"src", "href", "data", "action", "poster", "srcset", "xlink:href", "background"}
_EXTERNAL = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"(url\(\s*['\"]?\s*(https?:)?//|@import\s+['\"]?\s*(https?:)?//)", re.I)


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        for name, value in attrs:
            if value is None:
                continue
            if name.lower() in _URL_ATTRS and _EXTERNAL.match(value):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name.lower() == "style" and _CSS_URL.search(value):
                self.found.append(f"<{tag} style={value[:80]!r}>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script and _CSS_URL.search(data):
            self.found.append(f"css: {_CSS_URL.search(data).group(0)!r}")


def external_urls(html: str) -> list[str]:
    """Tag attributes and CSS that would make a browser fetch something over the network.

    Text inside ``<script>`` (e.g. URL constants in the plotly.js bundle that only geo charts use)
    is not markup and is not scanned; a ``<script src=...>`` is.
    """
    scan = _Scan()
    scan.feed(html)
    scan.close()
    return scan.found


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    """The browser; FAIL (not skip) in CI when it is missing, skip locally."""
    path = chromium()
    if path is None:
        msg = "headless Chromium is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def screenshot(html_path: Path, png_path: Path, *, width: int = 1200, height: int = 1600) -> Path:
    """Render ``html_path`` in headless Chromium with all network lookups failing."""
    cmd = [
        require_chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--virtual-time-budget=8000",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={png_path.parent / 'chromium-profile'}",
        f"--screenshot={png_path}",
        html_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return png_path


def png_pixels(path: Path) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into (width, height, pixels)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride = zlib.decompress(idat), w * bpp
    prev, rows, i = bytearray(stride), [], 0
    for _ in range(h):
        f, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], prev[x - bpp] if x >= bpp else 0
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    px = [tuple(r[x * bpp : x * bpp + 3]) for r in rows for x in range(w)]
    return w, h, px  # type: ignore[return-value]
