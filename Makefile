# hookline: `make run` serves on SQLite at 127.0.0.1:8000; `make test` runs every test.
# Needs only python3 (3.11+), make and git: uv is bootstrapped into .tools when missing.

PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
export UV_PYTHON_DOWNLOADS := never
export UV_PYTHON := $(shell command -v $(PYTHON))

HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint format bench bench-smoke clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==0.13.9

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --quiet
	@touch $@

run: .venv/.synced
	HOOKLINE_ENV=development .venv/bin/hookline migrate
	HOOKLINE_ENV=development .venv/bin/hookline serve --host $(HOST) --port $(PORT)

# Tests run in TEST_PROCESSES processes at once (pytest-xdist; 0 runs them in this one), then
# those marked `alone` (a PostgreSQL restart, load measurements) by themselves. Exit
# status 5 is pytest's "no tests selected", e.g. when PYTEST_ARGS picks none of them.
TEST_PROCESSES ?= 2

test: .venv/.synced
	.venv/bin/pytest -n $(TEST_PROCESSES) --dist worksteal -m "not alone" $(PYTEST_ARGS)
	.venv/bin/pytest -m alone $(PYTEST_ARGS) || [ $$? -eq 5 ]

lint: .venv/.synced
	.venv/bin/ruff check src tests bench
	.venv/bin/ruff format --check src tests bench
	.venv/bin/mypy

format: .venv/.synced
	.venv/bin/ruff check --fix src tests bench
	.venv/bin/ruff format src tests bench

bench: .venv/.synced
	.venv/bin/python -m bench.run

clean:
	rm -rf .venv .tools var .pytest_cache .mypy_cache .ruff_cache
