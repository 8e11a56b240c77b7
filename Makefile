# Everything runs from a project-local virtualenv; the stamp file re-installs
# it whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MUTATE_STAMP := $(VENV)/.installed-mutate
CONFORMANCE := ../shared/conformance/hasura/run.py
CLIENTS := tests/clients
CLIENTS_STAMP := $(CLIENTS)/node_modules/.installed
BROWSER := tests/browser
BROWSER_STAMP := $(BROWSER)/node_modules/.installed
SDK := clients/js
SDK_STAMP := $(SDK)/node_modules/.installed
CHROMIUM := /usr/bin/chromium
# Test files run in parallel processes (pytest-xdist, one file per process at a
# time); the `faults` tests restart PostgreSQL and Redis under everyone, so
# they run afterwards, alone.
TEST_WORKERS ?= 3

.PHONY: install run test node-deps sdk-deps browser-deps playground conformance bench bench-compare soak mutate lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	echo '*' > $(VENV)/.gitignore
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

# `make .venv` is the documented way to just create the environment.
$(VENV): $(STAMP)

run: $(STAMP)
	$(BIN)/forgegraph serve

test: $(STAMP) node-deps sdk-deps browser-deps
	$(BIN)/ruff check graph tests migrations bench
	$(BIN)/mypy graph
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not faults"
	$(BIN)/pytest -q -m faults

# The README's Apollo and urql examples run in Node (tests/test_frontend_clients.py).
# npm ci runs again when the lock file changes or node_modules is gone; without
# npm it does nothing and those tests skip (fail under FORGEGRAPH_REQUIRE_SERVICES=1).
node-deps: $(CLIENTS_STAMP)

$(CLIENTS_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(CLIENTS) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "node-deps: skipped (npm not found)"; \
	fi

# The TypeScript SDK's node tests (tests/test_js_sdk.py) need its dev
# dependencies (typescript, esbuild, ws); npm ci again only when its lock changes.
sdk-deps: $(SDK_STAMP)

$(SDK_STAMP): $(SDK)/package.json $(SDK)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(SDK) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "sdk-deps: skipped (npm not found)"; \
	fi

# tests/test_playground.py drives Debian's chromium with playwright-core.
# chromium is installed only when missing, npm ci only when the lock changed;
# a machine without apt or npm gets a note, and those tests skip (fail under
# FORGEGRAPH_REQUIRE_SERVICES=1).
browser-deps: $(BROWSER_STAMP)
	@if [ ! -x $(CHROMIUM) ]; then \
		if command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
				|| echo "browser-deps: could not install chromium"; \
		else \
			echo "browser-deps: $(CHROMIUM) is missing and there is no apt-get"; \
		fi; \
	fi

$(BROWSER_STAMP): $(BROWSER)/package.json $(BROWSER)/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		cd $(BROWSER) && npm ci --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "browser-deps: skipped npm ci (npm not found)"; \
	fi

# Rebuild the GraphiQL page (playground/) into graph/playground_dist/, which is
# committed so that installing the package needs no Node.
playground:
	cd playground && npm ci --no-audit --no-fund && npm run build

# Without the suite a local run notes the skip; in CI (CI=true, or
# FORGEGRAPH_REQUIRE_SERVICES=1 as .ci/run sets) a missing suite is a failure.
conformance:
	@if [ -f $(CONFORMANCE) ]; then \
		$(PYTHON) $(CONFORMANCE); \
	elif [ "$${CI:-}" = "true" ] || [ "$${FORGEGRAPH_REQUIRE_SERVICES:-}" = "1" ]; then \
		echo "conformance: $(CONFORMANCE) not found (required in CI)" >&2; \
		exit 1; \
	else \
		echo "conformance: skipped ($(CONFORMANCE) not found)"; \
	fi

# With ../shared/bench/ present, every figure is measured alternately with the
# reference servers there, and printed beside them as a ratio.
bench: $(STAMP)
	$(BIN)/python bench/run.py $(if $(wildcard ../shared/bench/ceiling_server.py),--with-references) $(if $(FANOUT_GO),--fanout-go $(FANOUT_GO))

# Two checkouts measured alternately in one run: `make bench-compare BEFORE=../base`
# (AFTER defaults to this checkout). Fan-out needs fanout-go, which
# ../shared/bench/native/build.sh puts in one of the FANOUT_GO places below.
AFTER ?= .
ROUNDS ?= 5
FANOUT_GO ?= $(firstword $(wildcard ../shared/bench/native/bin/fanout-go $(HOME)/.cache/forgegraph-bench-native/fanout-go))

bench-compare: $(STAMP)
	@test -n "$(BEFORE)" || { echo "bench-compare: BEFORE=<checkout> is required" >&2; exit 1; }
	$(BIN)/python bench/compare_requests.py --before $(BEFORE) --after $(AFTER) --rounds $(ROUNDS); status=$$?; \
	if [ -n "$(FANOUT_GO)" ]; then \
		$(BIN)/python bench/compare_fanout.py --before $(BEFORE) --after $(AFTER) --rounds $(ROUNDS) --client $(FANOUT_GO) || status=1; \
	else \
		echo "bench-compare: fan-out skipped (fanout-go not built: ../shared/bench/native/build.sh)"; \
	fi; \
	exit $$status

# 5,000 idle + 200 active subscribers and 20 mutations/s for 3 minutes (bench/soak.py --help).
soak: $(STAMP)
	$(BIN)/python bench/soak.py

# Mutation testing (mutmut, the `mutate` extra) over the change log and capture,
# the in-memory matcher, the permission rules and the outbox; [tool.mutmut] in
# pyproject.toml says which modules and which tests. Not part of `make test`.
# Results are kept in mutants/ between runs (mutmut re-checks only what changed;
# `rm -rf mutants` for a fresh run); the table at the end counts survivors per module.
$(MUTATE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[dev,mutate]'
	touch $(MUTATE_STAMP)

# Most of a realtime test is waiting on sockets: twice the cores keeps both busy.
MUTATE_CHILDREN ?= $(shell echo $$(( $$(nproc) * 2 )))

mutate: $(MUTATE_STAMP)
	FORGEGRAPH_HYPOTHESIS_PROFILE=mutate $(BIN)/mutmut run --max-children $(MUTATE_CHILDREN); status=$$?; \
	$(BIN)/python -m tests.mutate_summary && exit $$status

lint: $(STAMP)
	$(BIN)/ruff check graph tests migrations
	$(BIN)/mypy graph

clean:
	rm -rf $(VENV) mutants build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
