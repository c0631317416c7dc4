# Two commands (README): `make figures` runs every notebook and writes figures/; `make test` runs the tests.
# Both create .venv on first use; nothing needs to be installed by hand beyond Python 3.10+ and pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)
# Use the offline benchmark copy of this workplace when it exists and nothing else was set.
SHARED_DATA := $(abspath $(wildcard ../shared/datasets))
export PAPERLIB_DATA ?= $(SHARED_DATA)

.PHONY: setup figures test clean-venv cascnn-checkpoints svoboda-checkpoints

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

# How the committed CAS-CNN checkpoints were trained (`cpu` budget; hours on this 2-core CPU).
# Resumable: rerun after an interruption. QF20 first, the other QFs start from it (as in the paper).
CASCNN_DERIVED_STEPS ?= 1200
cascnn-checkpoints: $(STAMP)
	$(BIN)/python -m paperlib.models.cascnn --qf 20 --budget cpu --out runs/cascnn-q20 --publish
	set -e; for q in 10 40 60 80; do \
	  $(BIN)/python -m paperlib.models.cascnn --qf $$q --budget cpu --steps $(CASCNN_DERIVED_STEPS) \
	    --init-from checkpoints/cascnn-q20.pt --out runs/cascnn-q$$q --publish; \
	done

# L4/L8 (Svoboda et al.) networks for Tables 3-4 (`cpu` budget; resumable). More runs follow with the notebook.
svoboda-checkpoints: $(STAMP)
	$(BIN)/python -m paperlib.models.svoboda --arch L4 --objective residual --qf 10 --budget cpu --out runs/l4-residual-q10 --publish
	$(BIN)/python -m paperlib.models.svoboda --arch L4 --objective residual --qf 20 --budget cpu --out runs/l4-residual-q20 --publish
	$(BIN)/python -m paperlib.models.svoboda --arch L8 --objective residual --qf 20 --budget cpu --out runs/l8-residual-q20 --publish
