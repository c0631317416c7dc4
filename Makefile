# Two commands (README): `make figures` runs every notebook and writes figures/; `make test` runs the tests.
# Both create .venv on first use; nothing needs to be installed by hand beyond Python 3.10+ and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# Use the offline benchmark copy of this workplace when it exists and nothing else was set.
SHARED_DATA := $(abspath $(wildcard ../shared/datasets))
export PAPERLIB_DATA ?= $(SHARED_DATA)

.PHONY: setup figures test clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	# torch and torchvision first, as a pair that imports together (torch-fidelity needs torchvision)
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

figures: $(STAMP)
	mkdir -p build/notebooks
	set -e; for nb in notebooks/*.ipynb; do \
	  $(BIN)/papermill --cwd notebooks "$$nb" "build/notebooks/$$(basename $$nb)"; \
	done

test: $(STAMP)
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
