"""Notebook outputs as the admin shows them: read, not raw JSON.

Text (streams, plain text, error tracebacks with their terminal colours taken out) is escaped;
PNG, JPEG and GIF images are shown from their base64 data, SVG as an image too (a data URL, so
its scripts never run); HTML goes into a sandboxed iframe (``sandbox`` with nothing allowed: no
scripts, no same-origin access, no forms), never into the admin's own page. Pure functions.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString

ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
IMAGES = ("image/png", "image/jpeg", "image/gif")


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _pre(text: str, css: str = "") -> SafeString:
    return format_html('<pre class="output {}">{}</pre>', css, ANSI.sub("", text))


def _image(mime: str, data: Any) -> SafeString | None:
    encoded = _text(data).replace("\n", "")
    try:
        base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return format_html('<img class="output" alt="{}" src="data:{};base64,{}">', mime, mime, encoded)


def _svg(data: Any) -> SafeString:
    encoded = base64.b64encode(_text(data).encode()).decode()
    return format_html(
        '<img class="output" alt="image/svg+xml" src="data:image/svg+xml;base64,{}">', encoded
    )


def _html(data: Any) -> SafeString:
    return format_html(
        '<iframe class="output" sandbox="" referrerpolicy="no-referrer" srcdoc="{}"></iframe>',
        _text(data),
    )


def _bundle(data: dict[str, Any]) -> SafeString:
    """The richest representation the admin can show safely."""
    for mime in IMAGES:
        if mime in data:
            shown = _image(mime, data[mime])
            if shown is not None:
                return shown
    if "image/svg+xml" in data:
        return _svg(data["image/svg+xml"])
    if "text/html" in data:
        return _html(data["text/html"])
    for mime in ("text/markdown", "text/latex", "application/json", "text/plain"):
        if mime in data:
            value = data[mime]
            return _pre(value if isinstance(value, str | list) else repr(value))
    return _pre(", ".join(sorted(data)) or "(no data)", "empty")


def render_output(output: Any) -> SafeString:
    """One nbformat output as HTML that is safe inside the admin."""
    if not isinstance(output, dict):
        return _pre(repr(output), "unknown")
    kind = output.get("output_type")
    if kind == "stream":
        return _pre(_text(output.get("text")), "stderr" if output.get("name") == "stderr" else "")
    if kind == "error":
        traceback = output.get("traceback") or []
        text = "\n".join(_text(line) for line in traceback) or (
            f"{output.get('ename', '')}: {output.get('evalue', '')}"
        )
        return _pre(text, "error")
    if kind in ("display_data", "execute_result", "update_display_data"):
        data = output.get("data")
        return _bundle(data if isinstance(data, dict) else {})
    return _pre(repr(output), "unknown")
