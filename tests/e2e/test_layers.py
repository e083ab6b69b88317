"""The package's layers hold: `core` computes without wandb or the layers above, `tracking` never imports
`trainer`, and the public API resolves lazily to the module that defines each name.

Each import runs in a fresh interpreter, so what one test imported cannot hide what another module pulls in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hf_search_wandb

PACKAGE = Path(hf_search_wandb.__file__).resolve().parent
ROOT = PACKAGE.parent


def _modules(layer: str) -> list[str]:
    return sorted(
        "hf_search_wandb." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__")
        for p in (PACKAGE / layer).rglob("*.py")
    )


def _imported_after(module: str) -> list[str]:
    """Every module name in `sys.modules` after `import module` in a fresh interpreter."""
    code = f"import json, sys, {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_layer_has_modules() -> None:
    for layer in ("core", "tracking", "trainer"):
        assert len(_modules(layer)) > 1, layer


@pytest.mark.parametrize("module", _modules("core"))
def test_core_imports_neither_wandb_nor_the_layers_above(module: str) -> None:
    loaded = _imported_after(module)
    offending = [
        m
        for m in loaded
        if m == "wandb" or m.startswith(("wandb.", "hf_search_wandb.tracking", "hf_search_wandb.trainer"))
    ]
    assert offending == [], f"{module} pulls in {offending}"


@pytest.mark.parametrize("module", _modules("tracking"))
def test_tracking_never_imports_trainer_nor_wandb_at_import(module: str) -> None:
    loaded = _imported_after(module)
    offending = [m for m in loaded if m == "wandb" or m.startswith(("wandb.", "hf_search_wandb.trainer"))]
    assert offending == [], f"{module} pulls in {offending}"


def test_importing_the_package_loads_no_layer() -> None:
    loaded = _imported_after("hf_search_wandb")
    assert [m for m in loaded if m.startswith("hf_search_wandb.")] == ["hf_search_wandb._version"]
    assert "wandb" not in loaded


def test_public_api_resolves_to_the_defining_module() -> None:
    exported = set(hf_search_wandb.__all__) - {"__version__"}
    assert exported == set(hf_search_wandb._EXPORTS)
    for name in sorted(exported):
        value = getattr(hf_search_wandb, name)
        assert value is not None
        if hasattr(value, "__module__") and callable(value):
            assert value.__module__ == hf_search_wandb._EXPORTS[name], name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = hf_search_wandb.nope


def test_architecture_doc_names_every_module() -> None:
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "__init__.py" or p.parent == PACKAGE
    )
    missing = [m for m in modules if f"`{m}`" not in page]
    assert missing == [], f"docs/architecture.md does not name {missing}"
