# Two entry points for a fresh clone; each installs what it needs into .venv first.
#   make run    train the default experiment (bundled faces) under sgd, rmsprop and adam
#   make test   the test suite (it checks a fresh smoke run against the committed baseline too)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime

.PHONY: run test test-fast wheel-check lint bench clean browser trend

# `make run` needs only bench's own dependencies; the test extras (Ray, MLflow, Chromium's driver,
# Hypothesis...) are installed by the targets that use them.
$(RUNTIME): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUNTIME)

$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install --quiet -e '.[test,ray]'
	touch $(STAMP)

run: $(RUNTIME)
	$(BIN)/bench run --optimizers sgd,rmsprop,adam

# The report test drives Debian's Chromium; install it where apt works (as root), else that test
# is skipped with its reason shown in pytest's summary.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) || \
	    echo "note: could not install chromium; the browser test will be skipped"; }

# The suite includes the project's own loss-trend guard: tests/test_readme.py runs the README's CI
# recipe and checks that fresh smoke run against the committed results/baselines/smoke.json.
# Two pytest workers, each test file on one worker (module fixtures run once): 6.3 instead of 11.5 minutes
# on 2 cores, since much of a test's time is single-threaded tracing and process start-up. Each worker keeps to
# its share of the cores (tests/conftest.py): 215-230 s here on 2 cores (the VM's speed varies 10-20%).
# Files are handed out in the order tests/conftest.py sorts them (slow tests' files first), not xdist's own
# (most tests first), so that the two workers end together.
test: $(STAMP) browser
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder

# The inner loop: unit tests and tests on golden fixtures, nothing that trains (tests marked `training` are left
# out; a test that trains without the mark fails, see tests/conftest.py) and nothing that starts a server, a
# browser or a bench process (`integration`). Under a minute on 2 cores.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not training and not integration"

# The package as a user gets it: sdist and wheel built, the wheel installed alone in a throwaway environment,
# bench list and bench run smoke from outside the checkout (.ci/wheel-check says how).
wheel-check: $(STAMP)
	.ci/wheel-check

# The same trend guard alone, leaving JUnit/JSON results in .ci-results/.
trend: $(STAMP)
	$(BIN)/bench run smoke --quiet --no-report --fresh --out .ci-results
	$(BIN)/bench check .ci-results/smoke --baseline results/baselines/smoke.json --failures-only \
	  --junit .ci-results/bench-check.xml --json .ci-results/bench-check.json

# ruff, and the layer contracts of pyproject.toml (import-linter: layers import downward only).
lint: $(STAMP)
	$(BIN)/ruff check bench tests benchmarks
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python -m pytest -q benchmarks --benchmark-enable --benchmark-columns=min,median,mean,stddev,rounds

clean:
	rm -rf $(VENV) .pytest_cache .benchmarks
