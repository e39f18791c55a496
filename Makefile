# make lab   -> create .venv if missing, install, open JupyterLab on notebooks/
# make test  -> create .venv if missing, install, run pytest on tests/ and nbval on notebooks/
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# No thread variables: labkit picks its own thread count (labkit/compute.py, LABKIT_THREADS),
# so tests, notebooks and a learner's kernel compute the same way.
TEST_ENV := MPLBACKEND=Agg
# Extra JupyterLab flags, e.g. make lab LAB_ARGS="--no-browser --port 8899 --ip 127.0.0.1"
LAB_ARGS ?=
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: install lab test test-fast test-variants notebooks bench clean ui-test

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(PIP_SRC) --upgrade pip
	$(PY) -m pip install --quiet $(PIP_SRC) -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab $(ROOT_FLAG) $(LAB_ARGS) notebooks/

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile tests --nbval-lax notebooks

test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile tests

# The notebook checks under other processors' numeric code paths (MKL_CBWR, ATEN_CPU_CAPABILITY);
# prints how far each check cell's numbers move. VARIANTS= picks some (see tests/numeric_variants.py).
test-variants: $(STAMP)
	$(TEST_ENV) $(PY) tests/numeric_variants.py $(VARIANTS)

# executed with the kernel's inline backend (no MPLBACKEND), so the committed notebooks carry
# their figures for GitHub and nbviewer; nbval compares only the check cells' text
notebooks: $(STAMP)
	env -u MPLBACKEND $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb

bench: $(STAMP)
	$(PY) -m labkit bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# Browser check of the widgets in a real JupyterLab (needs Debian's chromium, installed here if missing; .ci/run runs it).
ui-test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core)
	$(PY) -c "import playwright" 2>/dev/null || $(PY) -m pip install --quiet $(PIP_SRC) playwright || $(PY) -m pip install --quiet playwright
	$(PY) tests/ui_check.py $(UI_ARGS)

# ---- workshops: offline wheelhouse and the multi-user hub (deploy/README.md) ----------------
# With wheelhouse/ present (make wheelhouse), installs use it and no network (pip --no-index)
# while it was made for this requirements.txt; an older one is used first, the network for the rest.
WHEELHOUSE ?= wheelhouse
PIP_SRC = $(if $(wildcard $(WHEELHOUSE)/*.whl),$(if $(shell cmp -s requirements.txt $(WHEELHOUSE)/requirements.txt && echo same),--no-index) --find-links $(WHEELHOUSE))
LEARNERS ?= 30
N ?= 8
NB ?= notebooks/00_welcome.ipynb
STAGGER ?= 0
HUB_PY := /opt/poisoning-lab/hubenv/bin/python

.PHONY: wheelhouse hub hub-stop hub-load hub-test

wheelhouse:
	$(PYTHON) deploy/wheelhouse.py $(WHEELHOUSE)

# as root: accounts learner01..learner$(LEARNERS) + instructor, the hub on 127.0.0.1:8765
hub:
	$(PYTHON) deploy/hubctl.py install --wheelhouse $(WHEELHOUSE)
	$(PYTHON) deploy/hubctl.py start --learners $(LEARNERS)

hub-stop:
	$(PYTHON) deploy/hubctl.py stop

hub-load:
	$(PYTHON) deploy/hubctl.py install --wheelhouse $(WHEELHOUSE)
	$(HUB_PY) deploy/hub_load.py -n $(N) --notebook $(NB) --stagger $(STAGGER) --out deploy/results/hub_load_n$(N).jsonl

hub-test: $(STAMP)
	$(PYTHON) deploy/hubctl.py install --wheelhouse $(WHEELHOUSE)
	LAB_HUB_TEST=1 $(TEST_ENV) $(PY) -m pytest -p no:xdist -p no:cacheprovider tests/test_hub.py -v
