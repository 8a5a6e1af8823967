# The two commands of the README; each sets up .venv on first use (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup lint clean

run: setup  ## the main job: every estimator against the exact gradient
	$(BIN)/gumbelkit compare

test: setup lint  ## ruff and the test suite
	$(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check .

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)
	touch $@

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache .ruff_cache
