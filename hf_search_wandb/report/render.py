"""Write the report page: one HTML file with Plotly, the page's script and styles, and the data inline.

Plotly's JavaScript is the `plotly.min.js` that the `plotly` Python package ships; nothing is fetched when
the file is built or opened (no CDN, no web font, no image from elsewhere).
"""

from __future__ import annotations

import html
import json
import math
import re
from importlib import resources
from typing import Any

from hf_search_wandb._version import __version__


def require_plotly_js() -> tuple[str, str]:
    """`(plotly.min.js source, plotly.js version)` from the installed `plotly` package.

    Raises:
        ImportError: plotly is not installed; the message says how to install it.
    """
    try:
        import plotly
        from plotly.offline import get_plotlyjs, get_plotlyjs_version
    except ImportError as err:
        raise ImportError("The report draws its charts with plotly: pip install 'hf-search-wandb[report]' "
                          "(or pip install plotly).") from err
    del plotly
    return get_plotlyjs(), get_plotlyjs_version()


def json_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def script_text(source: str) -> str:
    """JavaScript safe inside `<script>`: no `</script` closes the element early, no `<!--` changes how
    the browser parses it (both can only appear inside string or regex literals, where the escape is a no-op).

    Example:
        >>> script_text('s = "</script>"')
        's = "<\\\\/script>"'
    """
    return re.sub(r"</(script)", r"<\\/\1", source, flags=re.IGNORECASE).replace("<!--", "<\\!--")


def json_text(data: Any) -> str:
    """`data` as JSON safe inside `<script type="application/json">` (every `<` escaped as `\\u003c`)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":")).replace("<", "\\u003c")


def _asset(name: str) -> str:
    return resources.files("hf_search_wandb.report").joinpath("assets", name).read_text(encoding="utf-8")


def render_html(data: dict[str, Any], *, generated: str) -> str:
    """The page for `data` (see `page_data.build_page_data`).

    Args:
        data: the page data.
        generated: when the page was built (shown in its header).

    Returns:
        The whole HTML document.
    """
    plotly_js, plotly_version = require_plotly_js()
    payload = dict(json_safe(data), generated=generated, version=__version__, plotly_version=plotly_version)
    body = json_text(payload)
    title = html.escape(str(data.get("title", "report")))
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # No request may leave the page: forbid everything that is not inline.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
        "font-src data:; connect-src 'none'\">",
        f"<title>{title} — hf-search-wandb report</title>",
        f"<style>{_asset('report.css')}</style>",
        f"<script>/* plotly.js {plotly_version}, MIT licence, from the plotly Python package */\n"
        f"{script_text(plotly_js)}</script>",
        "</head><body>",
        f'<script id="report-data" type="application/json">{body}</script>',
        f"<script>{script_text(_asset('report.js'))}</script>",
        "</body></html>",
        "",
    ])
