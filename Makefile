# hermes-state: `make run` sets up and runs the embedded default, `make shell` opens a shell beside it;
# `make test` sets up and runs the tests; `make bench` measures.
#
# PYTHON is Debian's interpreter on purpose: the tests run the `hermes`
# command as an unprivileged uid, which must be able to execute the
# virtual environment's interpreter (a pyenv under /root would not do).
PYTHON ?= /usr/bin/python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_USER ?= hermes-test
# hermes-agent, the program this store serves: the tests run its real gateway and commands
# from a second environment that holds it and this package side by side (docs/hermes-agent.md).
HERMES_AGENT_VERSION ?= 0.19.0
AGENT_VENV ?= .venv-agent
SOURCES := pyproject.toml $(shell find hermes_lifecycle hermes_lifecycle_cli migrations -name '*.py' -o -name '*.mako' -o -name '*.html' 2>/dev/null)

# Debian packages, through sudo when not root; it waits for another apt or dpkg instead of failing.
APT_INSTALL := tools/apt-install

.PHONY: run shell run-user test setup system-deps test-deps test-user test-reachable bench bench-record lint clean

# The embedded default runs as one ordinary user (docs/design.md section 3). Started
# as root, it is handed to the unprivileged RUN_USER (made when missing) with
# its own venv and home under RUN_ROOT, which that user can reach wherever
# this checkout lives: gateways never run as root here. `make shell` opens a
# shell as exactly that user, with that home, PATH and venv (not root: you,
# .venv and your HERMES_HOME), so README's commands reach what `make run` runs.
RUN_USER ?= hermes
RUN_ROOT ?= /var/lib/hermes-state
RUN_VENV := $(RUN_ROOT)/venv
RUN_SHELL ?= /bin/bash
ifeq ($(shell id -u),0)
# Named after this checkout: a run from another checkout installs its own code.
RUN_INSTALLED := $(RUN_VENV)/.installed-from$(subst /,-,$(CURDIR))
RUN_READY := run-user $(RUN_INSTALLED)
AS_RUN_USER = setpriv --reuid=$(RUN_USER) --regid=$$(id -g $(RUN_USER)) --init-groups \
	env HOME=$(RUN_ROOT)/home HERMES_HOME=$(RUN_ROOT)/home PATH=$(RUN_VENV)/bin:/usr/bin:/bin
RUN_WHO = $(RUN_USER), HERMES_HOME=$(RUN_ROOT)/home, $(RUN_VENV)
else
RUN_READY := setup
AS_RUN_USER = env PATH=$(abspath $(BIN)):$$PATH HERMES_HOME=$${HERMES_HOME:-$$HOME/.hermes}
RUN_WHO = $$(id -un), HERMES_HOME=$${HERMES_HOME:-$$HOME/.hermes}, $(abspath $(VENV))
endif

run: $(RUN_READY)
	@echo "running the embedded default as $(RUN_WHO); in another terminal: make shell"
	@exec $(AS_RUN_USER) hermes-state up

shell: $(RUN_READY)
	@echo "a shell as $(RUN_WHO), as make run runs; exit to leave"
	@exec $(AS_RUN_USER) $(RUN_SHELL)

run-user:
	@id -u $(RUN_USER) >/dev/null 2>&1 || \
		useradd --system --user-group --home-dir $(RUN_ROOT)/home --shell /usr/sbin/nologin $(RUN_USER)
	@install -d -m 0755 $(RUN_ROOT)
	@install -d -m 0700 -o $(RUN_USER) -g $$(id -g $(RUN_USER)) $(RUN_ROOT)/home

# Installed again only when the sources changed (pip takes ~10 s even with nothing to do).
# umask 022: RUN_USER runs what root installs here.
$(RUN_INSTALLED): $(SOURCES) | system-deps run-user
	umask 022; test -x $(RUN_VENV)/bin/python || $(PYTHON) -m venv $(RUN_VENV)
	rm -rf build
	umask 022; $(RUN_VENV)/bin/python -m pip install -q . && \
		$(RUN_VENV)/bin/python -m pip install -q --no-deps --force-reinstall .
	rm -f $(RUN_VENV)/.installed-from*
	touch $@

# --durations: the slowest tests, so the suite's time stays in step with its size (PYTEST_DURATIONS=0: all).
PYTEST_DURATIONS ?= 30
test: test-reachable setup test-deps $(AGENT_VENV)/.installed
	HERMES_TEST_USER=$(TEST_USER) HERMES_AGENT_VENV=$(abspath $(AGENT_VENV)) \
		$(BIN)/pytest --durations=$(PYTEST_DURATIONS) $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed

# Debian packages: s6 (s6-svscan, s6-svc, ...) and a Python that can make venvs;
# sqlite3 is the shell operators use: the tests run the docs' SQL recipes in it.
system-deps:
	@if ! command -v s6-svscan >/dev/null || ! command -v sqlite3 >/dev/null \
		|| ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
		echo "installing Debian packages: s6 sqlite3 python3 python3-venv"; \
		$(APT_INSTALL) s6 sqlite3 python3 python3-venv; \
	fi

# What only the tests use: util-linux's unshare (the container's account step in a
# mount namespace), chromium (`hermes-state serve`'s page headless in a real
# browser), prometheus for promtool (it checks docs/operators.md's alert rules;
# 19 MB, its server is never started by the tests), postgresql (the server the PostgreSQL backend's tests start privately, as the
# test user, on a free port of 127.0.0.1: tests/pg_cluster.py). Its binaries are
# not on PATH, hence the look under /usr/lib/postgresql. The cluster Debian's
# package may create and start on 5432 is never used by the tests.
test-deps:
	@if ! command -v unshare >/dev/null || ! command -v chromium >/dev/null || ! command -v promtool >/dev/null \
		|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing Debian packages for the tests: util-linux chromium prometheus postgresql"; \
		$(APT_INSTALL) util-linux chromium prometheus postgresql; \
	fi

# A plain (not editable) install, as the container does: the tests then
# exercise the package as it ships, migrations included.
$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	rm -rf build  # setuptools' leftovers would ship modules that no longer exist
	$(BIN)/python -m pip install -q '.[test]'
	$(BIN)/python -m pip install -q --no-deps --force-reinstall .
	touch $@

# hermes-agent $(HERMES_AGENT_VERSION) from the package index (pip's cache keeps it), with aiohttp for its
# HTTP platform, then this package beside it, as an image built with HERMES_AGENT_VERSION holds them.
$(AGENT_VENV)/.agent-$(HERMES_AGENT_VERSION):
	rm -rf $(AGENT_VENV)
	$(PYTHON) -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/python -m pip install -q --upgrade pip
	$(AGENT_VENV)/bin/python -m pip install -q 'hermes-agent==$(HERMES_AGENT_VERSION)' 'aiohttp==3.14.1'
	touch $@

$(AGENT_VENV)/.installed: $(SOURCES) $(AGENT_VENV)/.agent-$(HERMES_AGENT_VERSION)
	rm -rf build
	$(AGENT_VENV)/bin/python -m pip install -q .
	$(AGENT_VENV)/bin/python -m pip install -q --no-deps --force-reinstall .
	touch $@

# An unprivileged uid for the tests (only when running as root, as CI does).
test-user:
	@if [ "$$(id -u)" = 0 ] && ! id -u $(TEST_USER) >/dev/null 2>&1; then \
		useradd --system --no-create-home --shell /usr/sbin/nologin $(TEST_USER); \
	fi

# The tests run `hermes-state` (and scripts of tests/) as TEST_USER, who must reach this
# checkout: under a private directory (/root is 0700) they cannot, which is said here, in
# one line, before anything is installed. .ci/run clones such a checkout to /var/tmp.
test-reachable: test-user
	@if [ "$$(id -u)" = 0 ] && ! setpriv --reuid=$(TEST_USER) --regid=$$(id -g $(TEST_USER)) --clear-groups \
		test -r $(CURDIR)/Makefile; then \
		echo "make test: the test user $(TEST_USER) cannot reach $(CURDIR) (a directory on the way is private): clone it where every user can read it, e.g. git clone $(CURDIR) /var/tmp/hermes-state, or run .ci/run, which does" >&2; \
		exit 2; \
	fi

# The benchmarks (not tests): peers, concurrency, scaling, hooks, memory, the
# fleet on PostgreSQL; one table, and the figures and plots in a new temporary
# directory (it says where). `make bench-record` writes them to bench/results.json
# and docs/perf-*.png instead. BENCH_ARGS: e.g. --under-load, or some items
# (`bench/run_all.py --help` lists them). What the chosen items need from Debian
# (stress-ng, postgresql) is installed when missing. The fleet item starts a
# private PostgreSQL server as TEST_USER (tests/pg_cluster.py), as the tests do.
bench: setup test-user $(VENV)/.bench-installed
	@missing=$$($(BIN)/python bench/run_all.py --missing-debian-packages $(BENCH_ARGS)) || exit; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for these benchmarks: $$missing"; \
		$(APT_INSTALL) $$missing; \
	fi
	HERMES_TEST_USER=$(TEST_USER) $(BIN)/python bench/run_all.py $(BENCH_RECORD) $(BENCH_ARGS)

bench-record: BENCH_RECORD := --record
bench-record: bench

# The `bench` extra: the peers measured beside the store (eventsourcing) and matplotlib.
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q '.[bench]'
	touch $@

# hadolint on the Dockerfile, shellcheck on every shell script, mypy and ruff on the package (`make test` runs it too).
lint: setup
	$(BIN)/pytest -q tests/test_lint.py

clean:
	rm -rf $(VENV) $(AGENT_VENV) build *.egg-info .pytest_cache
