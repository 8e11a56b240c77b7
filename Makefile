# Everything runs from a project-local virtualenv; the stamp file re-installs
# it whenever pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CONFORMANCE := ../shared/conformance/hasura/run.py

.PHONY: install run test conformance bench lint clean

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

test: $(STAMP)
	$(BIN)/ruff check graph tests migrations bench
	$(BIN)/mypy graph
	$(BIN)/pytest -q

conformance:
	@if [ -f $(CONFORMANCE) ]; then \
		$(PYTHON) $(CONFORMANCE); \
	else \
		echo "conformance: skipped ($(CONFORMANCE) not found)"; \
	fi

bench: $(STAMP)
	$(BIN)/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check graph tests migrations
	$(BIN)/mypy graph

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
