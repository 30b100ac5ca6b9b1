# hermes-state: `make run` sets up and runs the embedded default; `make test` sets up and runs the tests.
#
# PYTHON is Debian's interpreter on purpose: the tests run the `hermes`
# command as an unprivileged uid, which must be able to execute the
# virtual environment's interpreter (a pyenv under /root would not do).
PYTHON ?= /usr/bin/python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_USER ?= hermes-test
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := pyproject.toml $(shell find hermes_state hermes_cli migrations -name '*.py' -o -name '*.mako' 2>/dev/null)

.PHONY: run test setup system-deps test-user bench lint clean

run: setup
	$(BIN)/hermes state up

test: setup test-user
	HERMES_TEST_USER=$(TEST_USER) $(BIN)/pytest $(PYTEST_ARGS)

setup: system-deps $(VENV)/.installed

# Debian packages: s6 (s6-svscan, s6-svc, ...) and a Python that can make venvs;
# sqlite3 is the shell operators use: the tests run the docs' SQL recipes in it.
system-deps:
	@if ! command -v s6-svscan >/dev/null || ! command -v sqlite3 >/dev/null \
		|| ! $(PYTHON) -c 'import venv, ensurepip' 2>/dev/null; then \
		echo "installing Debian packages: s6 sqlite3 python3 python3-venv"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			s6 sqlite3 python3 python3-venv; \
	fi

# A plain (not editable) install, as the container does: the tests then
# exercise the package as it ships, migrations included.
$(VENV)/.installed: $(SOURCES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '.[test]'
	$(BIN)/python -m pip install -q --no-deps --force-reinstall .
	touch $@

# An unprivileged uid for the tests (only when running as root, as CI does).
test-user:
	@if [ "$$(id -u)" = 0 ] && ! id -u $(TEST_USER) >/dev/null 2>&1; then \
		useradd --system --no-create-home --shell /usr/sbin/nologin $(TEST_USER); \
	fi

bench: setup
	$(BIN)/python bench/run_all.py

# hadolint on the Dockerfile, shellcheck on every shell script (`make test` runs it too).
lint: setup
	$(BIN)/pytest -q tests/test_lint.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
