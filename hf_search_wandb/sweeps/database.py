"""The sweep database's URL, its retry bound and its failure, without importing Optuna.

- `storage_url` turns `postgresql://` (and Heroku's `postgres://`) into the URL of the PostgreSQL driver that
  is installed: psycopg 3 (`postgresql+psycopg://`) when it imports, else psycopg2 (`postgresql+psycopg2://`;
  the `sweeps` extra installs `psycopg2-binary`). SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg 3 only,
  so without this the documented URL failed with "Failed to import DB access module" next to psycopg2.
- `retry_seconds` is how long an agent rides out a database that does not answer (`--db-retry`,
  `HF_SEARCH_WANDB_DB_RETRY`, default `DEFAULT_RETRY_S`); `connection_problem` tells an outage (retried) from
  a wrong password or a missing database (not retried); past the bound the agent stops with
  `SweepDatabaseUnreachable`, whose one line names the database (password hidden), the cause and the time tried.
  The retrying itself is `retrying_storage.RetryingStorage`.
"""

from __future__ import annotations

import logging
import os

logger = logging.getLogger(__name__)

#: Seconds an agent keeps retrying a sweep database that does not answer, unless told otherwise.
DEFAULT_RETRY_S = 300.0
RETRY_ENV = "HF_SEARCH_WANDB_DB_RETRY"
#: Messages of errors that no retry can fix (a wrong password, a missing database or file).
PERMANENT = (
    "authentication failed",
    "does not exist",
    "no password supplied",
    "permission denied",
    "no such table",
    "unable to open database file",
    "role ",
)


class SweepDatabaseUnreachable(RuntimeError):
    """The sweep database did not answer within the retry bound; `str(err)` is one line naming the cause."""


def storage_url(url: str) -> str:
    """`url` with the installed PostgreSQL driver named; other URLs unchanged.

    Raises:
        ImportError: a PostgreSQL URL while neither psycopg (3) nor psycopg2 imports, with the install command.

    Example:
        >>> storage_url("sqlite:///sweep.db")
        'sqlite:///sweep.db'
        >>> storage_url("postgresql://u@db/sweeps") in ("postgresql+psycopg://u@db/sweeps",
        ...                                              "postgresql+psycopg2://u@db/sweeps")
        True
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgres"):
        return url
    for module, driver in (("psycopg", "psycopg"), ("psycopg2", "psycopg2")):
        try:
            __import__(module)
        except ImportError:
            continue
        return f"postgresql+{driver}://{rest}"
    raise ImportError(
        f"the sweep storage {display_url(url)} needs a PostgreSQL driver: pip install "
        "'hf-search-wandb[sweeps]' (installs psycopg2-binary), or pip install 'psycopg[binary]'"
    )


def display_url(url: str) -> str:
    """`url` with its password replaced by `***`, for messages.

    Example:
        >>> display_url("postgresql://sweeps:secret@db.example.org/sweeps")
        'postgresql://sweeps:***@db.example.org/sweeps'
    """
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        # Not a URL SQLAlchemy parses: say it as given, minus anything that looks like a password.
        head, at, tail = url.rpartition("@")
        return f"{head.split(':')[0]}:***@{tail}" if at and ":" in head.split("//")[-1] else url


def retry_seconds(value: float | None = None) -> float:
    """The retry bound: `value`, else `$HF_SEARCH_WANDB_DB_RETRY`, else `DEFAULT_RETRY_S`.

    Example:
        >>> retry_seconds(30)
        30.0
    """
    source = "--db-retry"
    if value is None:
        text = os.environ.get(RETRY_ENV)
        if not text:
            return DEFAULT_RETRY_S
        source = RETRY_ENV
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{RETRY_ENV} must be a number of seconds, got {text!r}") from None
    if not value >= 0:
        raise ValueError(f"{source} must be >= 0 seconds, got {value!r}")
    return float(value)


def connection_problem(err: BaseException) -> BaseException | None:
    """The database error behind `err` when it is a connection problem worth retrying, else None."""
    from sqlalchemy import exc

    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return current
        if isinstance(
            current, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError, exc.TimeoutError)
        ):
            text = str(getattr(current, "orig", None) or current).lower()
            return None if any(word in text for word in PERMANENT) else current
        current = current.__cause__ or current.__context__
    return None


def cause_line(err: BaseException) -> str:
    """The first line of the driver's own message (`connection refused`, `server closed the connection`)."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0].strip() if text else type(err).__name__
