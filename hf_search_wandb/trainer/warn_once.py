"""`WarnOnce`: log each distinct warning one time per callback, so a message fired on every step or every
`train()` call (no trainer found, wandb disabled, a skipped artifact) reaches the user once."""

from __future__ import annotations

import logging


class WarnOnce:
    """Callable that logs `message` at WARNING level the first time it sees it, and never again.

    Example:
        >>> import logging
        >>> warn = WarnOnce(logging.getLogger("demo"))
        >>> warn("no trainer found"), warn("no trainer found")
        (True, False)
    """

    def __init__(self, logger: logging.Logger, prefix: str = "hf_search_wandb: ") -> None:
        self.logger = logger
        self.prefix = prefix
        self.said: set[str] = set()

    def __call__(self, message: str) -> bool:
        """Warn with `message` unless it was said before; True when it was logged now."""
        if message in self.said:
            return False
        self.said.add(message)
        self.logger.warning("%s%s", self.prefix, message)
        return True
