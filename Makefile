# Esper: `make test` installs everything it needs (uv, the locked workspace) and runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := test
# uv from PATH, else the one pip installs (pyenv shims may not see a fresh install until a rehash).
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: setup system-deps test test-all lint typecheck codegen codegen-check bench demo

# Needs only Python >= 3.11 and the package registry: every dependency, torch included, comes from the lock.
# --compile-bytecode: some machines set PYTHONDONTWRITEBYTECODE, and torch then recompiles on every import (~8 s).
setup:
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --locked --compile-bytecode

# Debian packages the end-to-end tests drive: headless Chromium (web dashboard) and tmux (the TUI under
# `esper train --tui`). Never a downloaded browser.
SYSTEM_PACKAGES := chromium tmux fonts-dejavu-core
system-deps:
	@command -v chromium >/dev/null && command -v tmux >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		$(SYSTEM_PACKAGES) >/dev/null; }

lint:
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .

typecheck:
	$(UV) run --locked mypy --strict $(foreach p,leyline kasmina tolaria tamiyo simic karn cli,-p esper.$(p))

codegen:
	$(UV) run --locked python -m codegen

codegen-check:
	$(UV) run --locked python -m codegen --check

# The default suite: everything except runs marked `slow`.
test: setup lint typecheck codegen-check
	$(UV) run --locked pytest -m "not slow"

# Everything, slow end-to-end runs included.
test-all: setup lint typecheck codegen-check
	$(UV) run --locked pytest

# Benchmarks (not tests): ratios measured in one process; record results in docs/performance.md.
bench: setup
	$(UV) run --locked python bench/run_all.py

# The main job: a heuristic morphogenetic run on the digits task (a few seconds per episode on a CPU).
demo: setup
	$(UV) run --locked esper train heuristic --task digits
