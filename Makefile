# The two commands of the README; each sets up .venv on first use (scripts/setup.sh).
VENV ?= .venv
BIN := $(VENV)/bin
# the lab's runs at once (worker processes, one torch thread each)
JOBS ?= $(shell nproc 2>/dev/null || echo 1)

.PHONY: run test setup data lint clean

run: setup data  ## the main job: the lab, writing its report into lab-report/
	$(BIN)/gumbelkit lab --jobs $(JOBS)

data:  ## Fashion-MNIST for the lab (Debian package; without it E4 and E9 are not run)
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
