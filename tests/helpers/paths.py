"""Where the tests find the repository, the bundled SciFact and the scripts they launch."""

from __future__ import annotations

from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = TESTS_DIR.parent
SCIFACT = REPO_ROOT / "data" / "scifact"
SCRIPTS = TESTS_DIR / "scripts"
