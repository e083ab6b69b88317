"""The only place that imports wandb, lazily; and the choice of wandb mode.

`resolve_mode` never prompts and never waits on the network for more than `timeout` seconds: with no
credentials, or no route to the server, an online request falls back to offline (and says why).
"""

from __future__ import annotations

import logging
import netrc
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from urllib.parse import urlsplit

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "wandb is not installed: `pip install wandb` (or `pip install hf-search-wandb`, which depends on it)"
)
DEFAULT_BASE_URL = "https://api.wandb.ai"


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


@dataclass(frozen=True)
class ModeChoice:
    """The wandb mode to use and, when it differs from what was asked, why."""

    mode: str
    requested: str | None
    reason: str = ""

    @property
    def fell_back(self) -> bool:
        return self.requested in (None, "online") and self.mode == "offline" and bool(self.reason)


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
    """True when a TCP connection to the wandb server opens within `timeout` seconds."""
    parts = urlsplit(base_url or _base_url())
    host = parts.hostname
    if not host:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


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
