# Two commands set everything up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel is installed before the package so pip never pulls a CUDA build; override for GPUs.
TORCH_SPEC ?= torch==2.13.0
# Idle torch threads sleep instead of spinning: with parallel test workers on 2 cores, spinning is 10-35x slower.
export OMP_WAIT_POLICY ?= PASSIVE
# Trained task models are cached here (per checkout), so a fresh clone trains them once and reuses them.
export MAS_NB_CACHE ?= $(CURDIR)/.mas_nb_cache

.PHONY: install demo test sync check models nbtest pytest docs lab outputs
install: $(VENV)/.installed

$(VENV)/.installed: setup.py settings.ini pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev,llm,nwb]"
	touch $@

demo: install
	$(VENV)/bin/mas-nb demo --out demo_out

# Regenerate modules, clean notebooks and rebuild README.md (developer command).
sync: install
	$(VENV)/bin/nbdev_export
	$(VENV)/bin/nbdev_clean
	$(VENV)/bin/nbdev_clean --fname index.ipynb
	$(PY) tools/make_readme.py

check: install
	VENV=$(VENV) tools/check_sync.sh

# The models the default notebook cells and tests share, trained once before the parallel notebook run.
models: install
	$(VENV)/bin/mas-nb train --task multiobject --arch gru --seeds 0,1
	$(VENV)/bin/mas-nb train --task multiobject --arch lstm --seeds 0

nbtest: install models
	$(VENV)/bin/nbdev_test --n_workers 2 --timing
	$(VENV)/bin/nbdev_test --path index.ipynb --timing

pytest: install models
	$(PY) -m pytest -q tests

test: check nbtest pytest

# The notebooks as a static site in _docs/ (mkdocs-material + mkdocs-jupyter, search, offline math), rendered as
# committed: nothing is executed. Serve it with `python -m http.server -d _docs` (search needs http://, not file://).
docs: install
	@test -f /usr/share/javascript/mathjax/MathJax.js || (command -v apt-get >/dev/null && apt-get install -y -qq libjs-mathjax)
	$(PY) tools/make_docs.py

# JupyterLab on the notebooks, in this environment and with the model cache above (LAB_ARGS=--no-browser on a server).
lab: install
	$(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) $(LAB_ARGS)

# Re-execute notebooks in place and write their outputs back (commit them after `make sync`).
# NBS=nbs/04_mas.ipynb refreshes one; #| slow cells keep their last outputs unless FLAGS=slow.
NBS ?= index.ipynb $(sort $(wildcard nbs/*.ipynb))
outputs: install models
	for nb in $(NBS); do $(PY) tools/make_outputs.py $(if $(FLAGS),--flags '$(FLAGS)') $$nb || exit 1; done
