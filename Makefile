# Two entry points for a fresh machine: `make demo` (install + main job) and `make test` (install + tests).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export WANDB_MODE ?= offline
export TOKENIZERS_PARALLELISM ?= false

.PHONY: install demo test test-fast test-e2e test-docs test-slow test-oldest lint bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: the CPU build of 2.13.0 (an unpinned torch pulls a multi-GB CUDA build).
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

install: $(STAMP)

# The oldest supported pair (docs/versions.md): transformers 4.46 + sentence-transformers 3.4, pinned in
# constraints-oldest.txt, in a second environment beside .venv.
VENV_OLDEST := .venv-oldest
STAMP_OLDEST := $(VENV_OLDEST)/.installed

$(STAMP_OLDEST): setup.cfg pyproject.toml constraints-oldest.txt
	test -x $(VENV_OLDEST)/bin/python || $(PYTHON) -m venv $(VENV_OLDEST)
	$(VENV_OLDEST)/bin/python -m pip install -q --upgrade pip
	$(VENV_OLDEST)/bin/python -m pip install -q -c constraints-oldest.txt torch==2.13.0
	$(VENV_OLDEST)/bin/python -m pip install -q -c constraints-oldest.txt -e ".[dev]"
	touch $@

demo: install
	$(BIN)/python examples/train_bi_encoder.py --report outputs/report.html

lint: install
	$(BIN)/ruff check hf_search_wandb tests examples benchmarks
	$(BIN)/mypy

# Test tiers (docs/testing.md). Workers: pytest-xdist; more than the cores, as many tests wait on wandb's
# service or on processes they launch. --dist loadgroup: tests/conftest.py makes each test module a group
# (one worker, its module fixtures once); the package's doctests spread one by one.
TEST_WORKERS ?= 4
XDIST := -n $(TEST_WORKERS) --dist loadgroup

# everything but `slow` and `docs`: unit + in-process runs + e2e (processes, browser, database) + doctests
test: lint
	$(BIN)/python -m pytest -m "not slow and not docs" -q $(XDIST)

# the in-process tests of tests/ only: no e2e (no launched process, browser or database), no doctests
test-fast: install
	$(BIN)/python -m pytest tests -m "not slow and not docs and not e2e" -q $(XDIST)

# only the e2e tier (already part of `test`)
test-e2e: install
	$(BIN)/python -m pytest tests/e2e -m "not slow and not docs" -q $(XDIST)

# every Python example of README.md and docs/*.md, run as written with tiny budgets (CI runs it after `test`)
test-docs: install
	$(BIN)/python -m pytest -m docs -q tests/e2e/test_docs_examples.py

# the core suite on the oldest supported pair (docs/versions.md): the README quick start, the callback, the
# evaluators, tables, artifacts and the run conventions; tests of families that version lacks skip, saying why.
# Files, not folders: a new test file joins once it runs there (imports through core/compat.py).
OLDEST_TESTS := tests/test_compat.py tests/trainer/test_st_evaluators_adopted.py tests/trainer/test_no_eval_loop.py \
	tests/trainer/test_callback_config.py tests/trainer/test_callback_lifecycle.py tests/trainer/test_callback_media.py \
	tests/trainer/test_callback_training.py tests/trainer/test_post_train_and_several_evaluators.py \
	tests/trainer/test_reranking_training.py tests/trainer/test_sparse_callback.py \
	tests/evaluation/test_bad_inputs.py tests/evaluation/test_evaluator.py tests/evaluation/test_evaluator_scifact.py \
	tests/evaluation/test_matryoshka.py tests/evaluation/test_reranking.py tests/evaluation/test_sparse_evaluator.py \
	tests/models/test_encoders.py tests/models/test_model_artifacts.py tests/metrics/test_metrics_scifact.py \
	tests/tracking/test_run_conventions.py tests/tracking/test_tables.py tests/tracking/test_artifacts.py \
	"tests/e2e/test_docs_examples.py::test_page_examples_run[README.md]"

test-oldest: $(STAMP_OLDEST)
	$(VENV_OLDEST)/bin/python -m pytest -m "not slow" -q $(XDIST) $(OLDEST_TESTS)

test-slow: install
	$(BIN)/python -m pytest -m slow -q

clean:
	rm -rf $(VENV) $(VENV_OLDEST) outputs wandb .pytest_cache .mypy_cache
