# Two commands do all the set-up on a fresh machine with Python 3.11:
#   make demo   – the bot's main job against a local fake Telegram (no token, no network)
#   make test   – ruff and the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench run clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/tierbot demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# Every benchmark script; files starting with _ are their shared helpers. BENCH_FLAGS=--quick for small sizes.
bench: $(STAMP)
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script $(BENCH_FLAGS) || exit 1; done

run: $(STAMP)
	$(BIN)/tierbot run --config config.yaml

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
