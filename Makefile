# make lab   -> create .venv if missing, install, open JupyterLab on notebooks/
# make test  -> create .venv if missing, install, run pytest on tests/ and nbval on notebooks/
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# one BLAS thread per pytest worker: two workers share the 2 cores of a small machine
TEST_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg

.PHONY: install lab test test-fast notebooks bench clean ui-test

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

test: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile tests --nbval-lax notebooks

test-fast: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest -n 2 --dist loadfile tests

notebooks: $(STAMP)
	$(TEST_ENV) $(VENV)/bin/jupyter nbconvert --to notebook --execute --inplace notebooks/*.ipynb

bench: $(STAMP)
	$(PY) -m labkit bench

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis

# Browser check of the widgets in a real JupyterLab (needs Debian's chromium; not run by CI).
ui-test: $(STAMP)
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium fonts-dejavu-core)
	$(PY) -m pip install --quiet playwright
	$(PY) tests/ui_check.py 01_label_flipping.ipynb
