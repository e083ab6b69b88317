"""A wheel works: build it, install it into a fresh virtualenv, and use it from another folder.

Offline and fast: the wheel is built without build isolation (setuptools from this environment), the fresh
venv has no pip of its own (this environment's pip installs into it with `--python`), and its dependencies are
this environment's site-packages, reached through a plain path line in a `.pth` file (so this checkout's
editable install, itself a `.pth` hook, is NOT active there: only the wheel's copy can be imported).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT

BUILD_INPUTS = ("setup.cfg", "pyproject.toml", "README.md", "hf_search_wandb")


def _run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", WANDB_MODE="offline", TOKENIZERS_PARALLELISM="false", PIP_NO_INDEX="1")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the wheel of this checkout installed; returns its bin folder."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in BUILD_INPUTS:
        item = REPO_ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, source / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                  "-w", str(root / "dist"), str(source)], cwd=root)
    assert built.returncode == 0, built.stderr
    wheel = next((root / "dist").glob("hf_search_wandb-*.whl"))
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=root).stdout.strip())
    (site / "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                 "-q", str(wheel)], cwd=root)
    assert done.returncode == 0, done.stderr
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return env_dir / "bin"


def test_the_wheel_holds_what_it_needs(installed: Path) -> None:
    code = ("import hf_search_wandb, pathlib; package = pathlib.Path(hf_search_wandb.__file__).parent; "
            "print(hf_search_wandb.__file__); print((package / 'sweeps' / 'recommended.yaml').is_file()); "
            "print((package / 'py.typed').is_file())")
    out = _run([str(installed / "python"), "-c", code], cwd=installed.parent.parent / "elsewhere")
    assert out.returncode == 0, out.stderr
    location, recommended, typed = out.stdout.split()
    assert location.startswith(str(installed.parent)), location  # the wheel's copy, not this checkout
    assert recommended == typed == "True"


def test_console_script_help_and_validate_from_another_folder(installed: Path) -> None:
    where = installed.parent.parent / "elsewhere"
    help_out = _run([str(installed / "hf-search-wandb"), "--help"], cwd=where)
    assert help_out.returncode == 0 and "sweep" in help_out.stdout, help_out.stderr
    example = REPO_ROOT / "examples" / "sweep_bi_encoder.yaml"
    valid = _run([str(installed / "hf-search-wandb"), "sweep", "validate", str(example)], cwd=where)
    assert valid.returncode == 0, valid.stderr
    assert "valid (random, val/mrr@10 maximize" in valid.stdout


def test_defaults_that_need_data_name_the_flag(installed: Path, tmp_path: Path) -> None:
    where = installed.parent.parent / "elsewhere"
    example = REPO_ROOT / "examples" / "sweep_bi_encoder.yaml"
    run = _run([str(installed / "hf-search-wandb"), "sweep", "run", str(example), "--offline", "--count", "1",
                "--output-dir", str(tmp_path / "out")], cwd=where)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert "needs --data" in run.stderr


def test_no_module_constant_of_the_installed_package_points_nowhere(installed: Path) -> None:
    # every module of the wheel, imported outside the repository: a module-level path must exist there
    code = ("import importlib, pathlib, pkgutil, hf_search_wandb\n"
            "names = [m.name for m in pkgutil.walk_packages(hf_search_wandb.__path__, 'hf_search_wandb.')]\n"
            "for name in names:\n"
            "    module = importlib.import_module(name)\n"
            "    for attr, value in vars(module).items():\n"
            "        if isinstance(value, pathlib.PurePath) and not pathlib.Path(value).exists():\n"
            "            print('DANGLING', name, attr, value)\n"
            "print('checked', len(names))")
    out = _run([str(installed / "python"), "-c", code], cwd=installed.parent.parent)
    assert out.returncode == 0, out.stderr
    assert "DANGLING" not in out.stdout and "checked" in out.stdout, out.stdout


def test_the_evaluate_module_loads_from_the_installed_package(installed: Path) -> None:
    code = ("import evaluate, hf_search_wandb\n"
            "m = evaluate.load(hf_search_wandb.evaluate_module_path())\n"
            "print(m.compute(predictions={'q': {'a': 0.9, 'b': 0.1}}, references={'q': {'b': 1}}, "
            "metrics=['mrr@10']))")
    out = _run([str(installed / "python"), "-c", code], cwd=installed.parent.parent / "elsewhere")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("{'mrr@10': 0.5}")
