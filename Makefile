# Two commands: `make run` (set up, then run the main job on embedded defaults) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
APT_GET := $(shell command -v apt-get)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# PostgreSQL for the SQL contract tests, only where one answers (CI machines run one).
PG_URL ?= $(shell (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && echo postgresql+psycopg://postgres@127.0.0.1:5432/test)

.PHONY: run test setup sysdeps check lint bench clean

# make run leaves its results (executed notebooks, stores) in the repository's ./workspace.
EMERGENT_HOME ?= $(CURDIR)/workspace

run: setup
	EMERGENT_HOME=$(EMERGENT_HOME) $(BIN)/emergent run

# Two workers (pytest-xdist), a test file at a time each: a notebook's cells share one kernel and a
# module's fixtures (a Chromium, a JupyterLab) are started once. TEST_WORKERS=0 runs in this process.
TEST_WORKERS ?= 2

test: setup sysdeps
	EMERGENT_TEST_POSTGRES_URL=$${EMERGENT_TEST_POSTGRES_URL:-$(PG_URL)} \
	  $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:randomly --durations=25 \
	  -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/pip install --quiet -e ".[all]"
	$(BIN)/emergent models prepare
	touch $(STAMP)

# System packages the tests use: a real redis-server, Debian's Chromium (Playwright drives it), bubblewrap
# and libseccomp2 (the sandbox) and nginx (the load balancer in front of two `emergent serve` in the scale-out tests).
sysdeps:
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	/sbin/ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing="$$missing libseccomp2"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

lint: setup
	$(BIN)/ruff check emergent tests
	$(BIN)/mypy emergent

check: lint test

bench: setup
	$(BIN)/emergent bench memory
	$(BIN)/emergent bench jobs

clean:
	rm -rf $(VENV) tests/artifacts
