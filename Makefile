# The two commands of the README; each sets up .venv on first use (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup data lint clean

run: setup data  ## the main job: the lab, writing its report into lab-report/
	$(BIN)/gumbelkit lab

data:  ## Fashion-MNIST for the lab (Debian package; the lab falls back to sklearn digits)
	bash scripts/setup-data.sh

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
