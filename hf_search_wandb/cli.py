"""`hf-search-wandb` command line.

    hf-search-wandb sweep validate CONFIG [--count N] [--hours-per-run H]
    hf-search-wandb sweep run CONFIG [--offline] [--storage URL] [--count N] [--output-dir D] ...
    hf-search-wandb report PATH [PATH ...] [-o report.html] [--study NAME] [--title TEXT]
    hf-search-wandb compare RUN_A RUN_B [--step-a best|start|last|N] [--step-b ...] [--namespace val] ...

Exit codes: 0 done / valid; 2 invalid config or arguments (every reason on stderr); 3 the offline sweep's
database did not answer within --db-retry seconds (one line naming the cause); 1 other failures (among them a
sweep in which no trial completed).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_INVALID = 2
EXIT_DATABASE = 3


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `hf-search-wandb`."""
    parser = argparse.ArgumentParser(prog="hf-search-wandb", description=__doc__.splitlines()[0] if __doc__ else None)
    commands = parser.add_subparsers(dest="command", required=True)
    sweep = commands.add_parser("sweep", help="validate and run hyperparameter sweeps")
    actions = sweep.add_subparsers(dest="action", required=True)

    validate = actions.add_parser("validate", help="check a sweep YAML; exit 2 with every problem found")
    validate.add_argument("config", type=Path, help="sweep YAML in wandb's form")
    validate.add_argument("--count", type=int, help="maximum number of runs (else the file's `count`)")
    validate.add_argument("--hours-per-run", type=float, default=1.0, help="for the grid-size estimate")

    run = actions.add_parser("run", help="run a sweep agent (online: wandb; --offline: local Optuna engine)")
    run.add_argument("config", type=Path, help="sweep YAML in wandb's form")
    run.add_argument("--offline", action="store_true", help="use the local Optuna engine (no W&B server)")
    run.add_argument("--count", type=int, help="maximum number of runs in the sweep")
    run.add_argument("--storage", help="Optuna storage URL shared by agents (default sqlite in --output-dir)")
    run.add_argument("--output-dir", type=Path, default=Path("outputs/sweep"), help="store and trainer outputs")
    run.add_argument("--study-name", help="offline study name (default: the config's name)")
    run.add_argument("--seed", type=int, default=0, help="sampler seed (offline)")
    run.add_argument("--agent-id", type=int, default=0, help="distinct per concurrent agent (offline seeding)")
    run.add_argument("--grace-period", type=int, default=180, metavar="SECONDS",
                     help="offline: a trial whose agent sent no heartbeat for this long is failed and re-queued")
    run.add_argument("--db-retry", type=float, metavar="SECONDS",
                     help="offline: keep retrying a sweep database that stops answering for this long, then exit 3 "
                          "(default: $HF_SEARCH_WANDB_DB_RETRY, else 300)")
    run.add_argument("--project", help="wandb project (default: the YAML's project:, else WANDB_PROJECT, "
                                       "else search-model-training)")
    run.add_argument("--entity", help="wandb entity (default: the YAML's entity:, else WANDB_ENTITY)")
    run.add_argument("--sweep-id", help="join this existing wandb sweep (online)")
    program = run.add_argument_group("trial program (default: fine-tune a bi-encoder on a BEIR folder)")
    program.add_argument("--program", help="your own train function instead, as module:function or file.py:function")
    program.add_argument("--data", type=Path,
                         help="BEIR folder or Hub dataset name (required; e.g. data/scifact in a source checkout)")
    program.add_argument("--model", help="model folder (default: the offline all-MiniLM-L6-v2)")
    program.add_argument("--max-steps", type=int, default=-1, help="steps per trial (-1: num_epochs)")
    program.add_argument("--eval-steps", type=int, help="evaluate every N steps (default: each epoch)")
    program.add_argument("--logging-steps", type=int, default=10)
    program.add_argument("--max-train-pairs", type=int, default=2000)
    program.add_argument("--max-eval-queries", type=int, default=100)
    program.add_argument("--max-eval-docs", type=int, default=2000)
    program.add_argument("--callback-option", action="append", default=[], metavar="KEY=VALUE",
                         help="a SearchWandbConfig field for the callback, e.g. log_tables=off (repeatable)")

    report = commands.add_parser("report", help="write one self-contained HTML page of offline wandb runs")
    report.add_argument("paths", nargs="+", metavar="PATH",
                        help="a run folder, a folder of runs (e.g. wandb/), or an offline sweep's storage URL "
                             "(e.g. sqlite:///outputs/sweep/sweep.db)")
    report.add_argument("-o", "--output", type=Path, default=Path("report.html"), help="the HTML file to write")
    report.add_argument("--study", help="with a storage URL: only this study (default: all)")
    report.add_argument("--title", help="page title (default: the run's name, or 'N runs')")

    compare = commands.add_parser(
        "compare", help="paired significance tests of two evaluations (offline run folders), like ranx's compare")
    compare.add_argument("run_a", type=Path, metavar="RUN_A", help="run folder of A (the reference)")
    compare.add_argument("run_b", type=Path, metavar="RUN_B", help="run folder of B (may be RUN_A: two of its steps)")
    compare.add_argument("--step-a", default="best", help="A's evaluation: best (default), start, last or a step")
    compare.add_argument("--step-b", default="best", help="B's evaluation: best (default), start, last or a step")
    compare.add_argument("--namespace", help="the evaluations' namespace (default: val, else the only one)")
    compare.add_argument("--metrics", help="comma-separated measures (default: every one both runs kept)")
    compare.add_argument("--permutations", type=int, default=10_000, help="randomization test permutations")
    compare.add_argument("--seed", type=int, default=42, help="randomization test seed")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level (Holm-adjusted)")
    compare.add_argument("--top", type=int, default=5, help="most improved / regressed queries listed")
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON instead of a table")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `hf-search-wandb`; returns the exit code.

    Example:
        >>> from hf_search_wandb.sweeps.config import recommended_config_path
        >>> main(["sweep", "validate", str(recommended_config_path())])  # doctest: +ELLIPSIS
        /...recommended.yaml: valid (bayes, val/mrr@10 maximize, 8 parameters, count 30)
        0
    """
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "report":
        return _report(args)
    if args.command == "compare":
        return _compare(args)
    if args.action == "validate":
        return _validate(args)
    return _run(args)


def _load(args: argparse.Namespace) -> Any:
    from hf_search_wandb.sweeps.config import SweepConfigError, load_sweep_config

    try:
        return load_sweep_config(args.config, count=args.count, hours_per_run=getattr(args, "hours_per_run", 1.0))
    except SweepConfigError as err:
        # One problem: one line; several: every reason on its own line.
        print(f"error: {err.source}: {err.reasons[0]}" if len(err.reasons) == 1 else err, file=sys.stderr)
        return None
    except OSError as err:  # missing, a folder, unreadable
        print(f"error: cannot read the sweep config {args.config}: {err.strerror or err}", file=sys.stderr)
        return None


def _validate(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return EXIT_INVALID
    for warning in cfg.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    grid = cfg.grid_size()
    size = f", {grid:,} grid combinations" if cfg.method == "grid" and grid else ""
    print(f"{args.config}: valid ({cfg.method}, {cfg.metric} {cfg.goal}, {len(cfg.parameters)} parameters, "
          f"count {cfg.count}{size})")
    return 0


def _run(args: argparse.Namespace) -> int:
    cfg = _load(args)
    if cfg is None:
        return EXIT_INVALID
    try:
        program = _program(args)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    if args.offline:
        return _run_offline(args, cfg, program)
    from hf_search_wandb.sweeps.online import run_online_sweep
    from hf_search_wandb.tracking.wandb_api import resolve_mode

    choice = resolve_mode(None)
    if choice.mode != "online":
        print(f"error: online sweeps need the W&B server, but wandb would run {choice.mode} "
              f"({choice.reason or 'WANDB_MODE'}); add --offline to run the same YAML on the local engine",
              file=sys.stderr)
        return 1
    sweep_id = run_online_sweep(cfg, program, project=args.project, entity=args.entity, count=args.count,
                                sweep_id=args.sweep_id)
    print(f"sweep {sweep_id} done for this agent")
    return 0


def _run_offline(args: argparse.Namespace, cfg: Any, program: Any) -> int:
    from hf_search_wandb.sweeps.config import SweepConfigError
    from hf_search_wandb.sweeps.database import SweepDatabaseUnreachable
    from hf_search_wandb.sweeps.local import TrialsKeepFailing, run_local_sweep
    from hf_search_wandb.sweeps.pruning import SweepMetricMissingError

    try:
        result = run_local_sweep(cfg, program, output_dir=args.output_dir, storage=args.storage,
                                 study_name=args.study_name, seed=args.seed, agent_id=args.agent_id,
                                 project=args.project, entity=args.entity, grace_period=args.grace_period,
                                 db_retry=args.db_retry)
    except SweepConfigError as err:
        print(err, file=sys.stderr)
        return EXIT_INVALID
    except (SweepMetricMissingError, ImportError, ValueError) as err:  # a missing driver, a bad --db-retry
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except SweepDatabaseUnreachable as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_DATABASE
    except TrialsKeepFailing as err:  # with the error of the last one
        cause = f": {type(err.__cause__).__name__}: {err.__cause__}" if err.__cause__ else ""
        print(f"error: {err}{cause}", file=sys.stderr)
        return 1
    states = result.states()
    print(f"sweep {result.study_name}: this agent ran {result.ran} trial(s); all agents: {states}; "
          f"best {cfg.metric} = {result.best_value} with {result.best_params}")
    done = states.get("COMPLETE", 0) + states.get("PRUNED", 0)
    used = result.count_used_by_failures()
    if used:  # failures took slots of count: never an empty success
        print(f"{'error' if not done else 'warning'}: {used}", file=sys.stderr)
        return 1 if not done else 0
    if result.ran and not done:
        errors = {t.user_attrs.get("error") for t in result.trials if t.user_attrs.get("error")}
        print(f"error: every trial failed: {'; '.join(sorted(errors))}", file=sys.stderr)
        return 1
    return 0


def _report(args: argparse.Namespace) -> int:
    from hf_search_wandb.report import ReportInputError, build_report

    try:
        result = build_report(args.paths, args.output, study=args.study, title=args.title)
    except ReportInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    except ImportError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    for warning in result.warnings:  # runs left out or drawn from a damaged log: the page says so too
        print(f"warning: {warning}", file=sys.stderr)
    left_out = f", {len(result.skipped)} left out (unreadable)" if result.skipped else ""
    print(f"report of {result.runs} run(s){left_out}: {result.path.resolve()} ({result.size_bytes / 1e6:.1f} MB; "
          f"read {result.read_s:.1f} s, built {result.build_s:.1f} s)")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from hf_search_wandb.report import ReportInputError
    from hf_search_wandb.report.significance import as_json, compare, evaluations, format_table, pick

    if args.permutations < 1:
        print(f"error: --permutations must be >= 1, got {args.permutations}", file=sys.stderr)
        return EXIT_INVALID
    try:
        a = pick(evaluations(args.run_a, args.namespace), args.step_a, where=str(args.run_a))
        b = pick(evaluations(args.run_b, args.namespace), args.step_b, where=str(args.run_b))
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
        result = compare(a, b, metrics=metrics, n_permutations=args.permutations, seed=args.seed)
    except ReportInputError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps(as_json(result, alpha=args.alpha, top=args.top), indent=1))
    else:
        print(format_table(result, name_a=str(args.run_a), name_b=str(args.run_b), alpha=args.alpha, top=args.top))
    return 0


def _program(args: argparse.Namespace) -> Any:
    if args.program:
        return load_callable(args.program)
    from hf_search_wandb.sweeps.training import BiEncoderProgram, default_model_path

    if args.data is None:
        raise ValueError("the default trial program needs --data: a BEIR folder (corpus.jsonl, queries.jsonl, "
                         "qrels/; e.g. --data data/scifact in a source checkout) or a Hub dataset name; or give "
                         "your own --program")
    if args.model is None:
        try:
            default_model_path()
        except ImportError as err:
            raise ValueError(str(err)) from err

    options: dict[str, Any] = {}
    for item in args.callback_option:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--callback-option takes KEY=VALUE, got {item!r}")
        options[key] = _scalar(value)
    kwargs: dict[str, Any] = {
        "output_dir": args.output_dir / "trials", "max_steps": args.max_steps, "eval_steps": args.eval_steps,
        "logging_steps": args.logging_steps, "max_train_pairs": args.max_train_pairs,
        "max_eval_queries": args.max_eval_queries, "max_eval_docs": args.max_eval_docs,
        "seed": args.seed, "callback_options": options,
    }
    kwargs["data"] = args.data
    if args.model is not None:
        kwargs["model"] = args.model
    return BiEncoderProgram(**kwargs)


def _scalar(text: str) -> Any:
    """`3` -> 3, `0.5` -> 0.5, `true`/`false` -> bool, anything else stays text (`off` is not False)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def load_callable(spec: str) -> Any:
    """Import `module:function` or `path/to/file.py:function`.

    Example:
        >>> load_callable("json:dumps")([1])
        '[1]'
    """
    target, sep, name = spec.rpartition(":")
    if not sep or not target or not name:
        raise ValueError(f"--program takes module:function or file.py:function, got {spec!r}")
    try:
        if target.endswith(".py"):
            path = Path(target)
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            if module_spec is None or module_spec.loader is None or not path.is_file():
                raise ValueError(f"--program: no file {path}; give an existing file.py:function")
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except ValueError:
        raise
    except Exception as err:  # ImportError, SyntaxError, or anything the module raises on import
        raise ValueError(f"--program {spec}: importing {target} failed with {type(err).__name__}: {err} "
                         f"(check the module name and that it imports on its own; PYTHONPATH={os.environ.get('PYTHONPATH', '')!r})"
                         ) from err
    function = getattr(module, name, None)
    if not callable(function):
        raise ValueError(f"{target} has no callable {name!r}")
    return function


if __name__ == "__main__":
    sys.exit(main())
