# The two front-door commands (see README):
#   make run   -> set up, then run the main job on the embedded synthetic default
#   make test  -> set up, then run the test suite (what CI runs)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-slow lint bench

setup:
	@bash scripts/setup.sh

run: setup
	$(BIN)/memento train

test: setup
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: setup
	$(BIN)/python -m pytest -m slow -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/memento bench --help
