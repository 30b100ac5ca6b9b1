# hermes-state: `make run` sets up and runs the embedded default; `make test` sets up and runs the tests.
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
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := pyproject.toml $(shell find hermes_lifecycle hermes_lifecycle_cli migrations -name '*.py' -o -name '*.mako' -o -name '*.html' 2>/dev/null)

.PHONY: run test setup system-deps test-deps test-user bench lint sql clean

# The embedded default runs as one ordinary user (docs/design.md section 3). Started
# as root, it is handed to the unprivileged RUN_USER (made when missing) with
# its own venv and home under RUN_ROOT, which that user can reach wherever
# this checkout lives: gateways never run as root here.
RUN_USER ?= hermes
RUN_ROOT ?= /var/lib/hermes-state

run: setup
	@if [ "$$(id -u)" != 0 ]; then exec $(BIN)/hermes-state up; fi; \
	set -e; \
	id -u $(RUN_USER) >/dev/null 2>&1 || \
		useradd --system --user-group --home-dir $(RUN_ROOT)/home --shell /usr/sbin/nologin $(RUN_USER); \
	install -d -m 0755 $(RUN_ROOT); \
	install -d -m 0700 -o $(RUN_USER) -g $$(id -g $(RUN_USER)) $(RUN_ROOT)/home; \
	test -x $(RUN_ROOT)/venv/bin/python || $(PYTHON) -m venv $(RUN_ROOT)/venv; \
	$(RUN_ROOT)/venv/bin/python -m pip install -q . ; \
	echo "as root: running the embedded default as $(RUN_USER), HERMES_HOME=$(RUN_ROOT)/home"; \
	echo "  other terminals: runuser -u $(RUN_USER) -- env HERMES_HOME=$(RUN_ROOT)/home $(RUN_ROOT)/venv/bin/hermes-state ..."; \
	exec setpriv --reuid=$(RUN_USER) --regid=$$(id -g $(RUN_USER)) --init-groups \
		env HOME=$(RUN_ROOT)/home HERMES_HOME=$(RUN_ROOT)/home PATH=$(RUN_ROOT)/venv/bin:/usr/bin:/bin \
		$(RUN_ROOT)/venv/bin/hermes-state up

test: setup test-deps test-user $(AGENT_VENV)/.installed
	HERMES_TEST_USER=$(TEST_USER) HERMES_AGENT_VENV=$(abspath $(AGENT_VENV)) $(BIN)/pytest $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed

# Debian packages: s6 (s6-svscan, s6-svc, ...) and a Python that can make venvs;
# sqlite3 is the shell operators use: the tests run the docs' SQL recipes in it;
# util-linux's unshare gives the container's account step real mounts to meet;
# chromium loads `hermes state serve`'s page headless (and screenshots it for
# docs/operators.md); prometheus ships promtool, which checks the alert rules
# there (19 MB; its server is never started by the tests).
system-deps:
	@if ! command -v s6-svscan >/dev/null || ! command -v sqlite3 >/dev/null \
		|| ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
		echo "installing Debian packages: s6 sqlite3 python3 python3-venv"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			s6 sqlite3 python3 python3-venv; \
	fi

# What only the tests use: unshare (the account step in a mount namespace),
# chromium (the operators' page in a real browser), promtool (the alert rules),
# postgresql (the server the PostgreSQL backend's tests start privately, as the
# test user, on a free port of 127.0.0.1: tests/pg_cluster.py). Its binaries are
# not on PATH, hence the look under /usr/lib/postgresql. The cluster Debian's
# package may create and start on 5432 is never used by the tests.
test-deps:
	@if ! command -v unshare >/dev/null || ! command -v chromium >/dev/null || ! command -v promtool >/dev/null \
		|| ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		echo "installing Debian packages for the tests: util-linux chromium prometheus postgresql"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			util-linux chromium prometheus postgresql; \
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

# The benchmarks (not tests): peers, concurrency, scaling, hooks, memory, the
# fleet on PostgreSQL; one table, bench/results.json, the plots under docs/.
# BENCH_ARGS: e.g. --under-load. The fleet item starts a private PostgreSQL
# server as TEST_USER (tests/pg_cluster.py), as the tests do.
bench: setup test-user $(VENV)/.bench-installed
	@command -v stress-ng >/dev/null || { \
		echo "installing Debian package: stress-ng (for --under-load)"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends stress-ng; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing Debian package: postgresql (the fleet item's private server)"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql; }
	HERMES_TEST_USER=$(TEST_USER) $(BIN)/python bench/run_all.py $(BENCH_ARGS)

# The `bench` extra: the peers measured beside the store (eventsourcing) and matplotlib.
$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q '.[bench]'
	touch $@

# hadolint on the Dockerfile, shellcheck on every shell script (`make test` runs it too).
lint: setup
	$(BIN)/pytest -q tests/test_lint.py

# The SQL the SQLite recorder runs, compiled from hermes_lifecycle/store/statements.py
# (tests/test_generated_sql.py fails when it is stale).
sql: setup
	for backend in sqlite postgresql; do \
		$(BIN)/python -m hermes_lifecycle.store.generate $$backend > hermes_lifecycle/backends/$$backend/sql.py.new && \
		mv hermes_lifecycle/backends/$$backend/sql.py.new hermes_lifecycle/backends/$$backend/sql.py || exit 1; \
	done

clean:
	rm -rf $(VENV) $(AGENT_VENV) build *.egg-info .pytest_cache
