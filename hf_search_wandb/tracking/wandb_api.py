"""The only place that imports wandb, lazily; and the choice of wandb mode.

`resolve_mode` never prompts and never waits on the network for more than `timeout` seconds: with no
credentials, or no route to the server, an online request falls back to offline (and says why).
`start_run` then bounds `wandb.init` itself (wandb's `init_timeout` setting, `INIT_TIMEOUT` seconds unless
`WANDB_INIT_TIMEOUT` says otherwise) and starts the run offline when the online start fails for any
reason: a server that accepts connections but never answers, a host that is not a W&B server, a bad key.
"""

from __future__ import annotations

import importlib.util
import logging
import netrc
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "wandb is not installed: `pip install wandb` (or `pip install hf-search-wandb`, which depends on it)"
)
DEFAULT_BASE_URL = "https://api.wandb.ai"
#: Seconds `wandb.init` may take to start an online run before the run starts offline instead.
INIT_TIMEOUT = 10.0


def require_wandb() -> ModuleType:
    """Return the `wandb` module, or raise an ImportError that says how to install it.

    Example:
        >>> from hf_search_wandb.tracking.wandb_api import require_wandb
        >>> require_wandb().__name__
        'wandb'
    """
    try:
        import wandb
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return wandb


def require_installed() -> None:
    """Raise the ImportError with the install hint when wandb is not installed; imports nothing.

    Example:
        >>> require_installed()  # wandb is installed here
    """
    if importlib.util.find_spec("wandb") is None:
        raise ImportError(INSTALL_HINT)


@dataclass(frozen=True)
class ModeChoice:
    """The wandb mode to use and, when it differs from what was asked, why."""

    mode: str
    requested: str | None
    reason: str = ""


def _base_url() -> str:
    return os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL


def has_credentials(base_url: str | None = None) -> bool:
    """True when wandb could log in without prompting: `WANDB_API_KEY`, an identity token file, or a
    netrc entry for the server (what `wandb login` writes).

    Example:
        >>> import os
        >>> from hf_search_wandb.tracking.wandb_api import has_credentials
        >>> isinstance(has_credentials(), bool)
        True
    """
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlsplit(base_url or _base_url()).hostname or ""
    candidates = [os.environ.get("NETRC"), str(Path.home() / ".netrc"), str(Path.home() / "_netrc")]
    for path in candidates:
        if not path or not Path(path).is_file():
            continue
        try:
            if netrc.netrc(path).authenticators(host):
                return True
        except (netrc.NetrcParseError, OSError):
            continue
    return False


def server_reachable(base_url: str | None = None, timeout: float = 2.0) -> bool:
    """True when the wandb server answers an HTTP request (any status) within `timeout` seconds.

    A server that accepts the connection but never answers counts as unreachable (`wandb.init` would
    wait on it); one that answers but is not W&B passes here and is caught by `start_run`. The probe
    sends no credentials and does not check the TLS certificate (wandb does, when it connects). Behind
    an HTTP(S) proxy (`HTTPS_PROXY` ...) the probe is skipped: the proxy decides what is reachable.

    Example:
        >>> server_reachable("http://127.0.0.1:9", timeout=0.5)  # nothing listens on the discard port
        False
    """
    import http.client
    import ssl
    import urllib.request

    parts = urlsplit(base_url or _base_url())
    host = parts.hostname
    if not host:
        return False
    if urllib.request.getproxies().get(parts.scheme or "https") and not urllib.request.proxy_bypass(host):
        return True
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("HEAD", "/")
        conn.getresponse()
        return True
    except (OSError, http.client.HTTPException):  # refused, no route, DNS, timeout, garbage
        return False
    finally:
        conn.close()


def resolve_mode(mode: str | None = None, *, timeout: float = 2.0) -> ModeChoice:
    """Choose online / offline / disabled without prompting or hanging.

    Order: the `mode` argument, else `WANDB_MODE`, else online. Online needs credentials and a reachable
    server; otherwise the result is offline with the reason (log it once). `WANDB_DISABLED=true` (the
    transformers spelling) means disabled.

    Example:
        >>> from hf_search_wandb.tracking.wandb_api import resolve_mode
        >>> resolve_mode("disabled").mode
        'disabled'
        >>> resolve_mode("offline").mode
        'offline'
    """
    requested = mode or os.environ.get("WANDB_MODE") or None
    if requested is None and os.environ.get("WANDB_DISABLED", "").lower() in ("1", "true", "yes"):
        requested = "disabled"
    if requested in ("disabled", "offline"):
        return ModeChoice(requested, requested)
    if requested == "dryrun":
        return ModeChoice("offline", requested)
    if requested not in (None, "online", "run", "shared"):
        raise ValueError(f"wandb mode must be online, offline or disabled, got {requested!r}")
    if not has_credentials():
        return ModeChoice(
            "offline", requested, "no wandb credentials (WANDB_API_KEY or `wandb login`): logging offline"
        )
    if not server_reachable(timeout=timeout):
        return ModeChoice("offline", requested, f"wandb server {_base_url()} unreachable: logging offline")
    return ModeChoice("online" if requested in (None, "run") else requested, requested)


def init_timeout() -> float:
    """The bound on an online `wandb.init`: `WANDB_INIT_TIMEOUT` (wandb's own variable) or `INIT_TIMEOUT`.

    Example:
        >>> init_timeout() > 0
        True
    """
    text = os.environ.get("WANDB_INIT_TIMEOUT")
    try:
        value = float(text) if text else INIT_TIMEOUT
    except ValueError:
        raise ValueError(f"WANDB_INIT_TIMEOUT must be a number of seconds, got {text!r}") from None
    if not value > 0:
        raise ValueError(f"WANDB_INIT_TIMEOUT must be > 0 seconds, got {text!r}")
    return value


def start_run(wandb: ModuleType, kwargs: dict[str, Any], say: Callable[[str], None] = logger.warning) -> Any:
    """`wandb.init(**kwargs)` that never hangs and never fails because of the server.

    Offline and disabled runs start as asked. An online start is bounded by `init_timeout()` seconds
    (wandb's `init_timeout` setting); if it fails for any reason (timeout, an answer that is not W&B's,
    a refused key) the same run starts offline, and `say` gets one line with the reason and how to upload
    the run later (`wandb sync`).

    Example:
        >>> wandb = require_wandb()
        >>> run = start_run(wandb, {"project": "doc", "mode": "disabled"})
        >>> run.finish()
    """
    if kwargs.get("mode", os.environ.get("WANDB_MODE")) in ("offline", "dryrun", "disabled"):
        return wandb.init(**kwargs)
    timeout = init_timeout()
    settings = kwargs.get("settings")
    bounded = {**kwargs, "settings": _with_timeout(wandb, settings, timeout)}
    try:
        return wandb.init(**bounded)
    except Exception as err:  # wandb raises CommError, AuthenticationError, UsageError, plain Error ...
        reason = str(err).strip().splitlines()[0][:300] if str(err).strip() else type(err).__name__
        offline = {**kwargs, "mode": "offline"}
        run = wandb.init(**offline)
        where = Path(run.dir).parent if getattr(run, "dir", None) else "the run folder"
        say(f"hf_search_wandb: wandb could not start online within {timeout:g} s at {_base_url()} "
            f"({type(err).__name__}: {reason}): logging offline; upload later with `wandb sync {where}`")
        return run


def _with_timeout(wandb: ModuleType, settings: Any, timeout: float) -> Any:
    """`settings` (None, a dict or a `wandb.Settings`) with `init_timeout` set, unless it sets one."""
    if settings is None:
        return wandb.Settings(init_timeout=timeout)
    if isinstance(settings, dict):
        return {"init_timeout": timeout, **settings}
    if "init_timeout" in getattr(settings, "model_fields_set", ()):
        return settings
    return settings.model_copy(update={"init_timeout": timeout})


def active_run(run: Any = None) -> Any:
    """`run`, or the active `wandb.run`; None when there is none or it is disabled (what every logging helper
    of this layer logs into).

    Example:
        >>> active_run(None) is None  # no run started in this process
        True
    """
    if run is None:
        wandb = sys.modules.get("wandb")  # no run can be active if wandb was never imported
        run = getattr(wandb, "run", None) if wandb is not None else None
    if run is None or getattr(run, "disabled", False):
        return None
    return run
