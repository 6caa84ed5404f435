# GradAttn companion. `make paper` and `make test` each install first on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_PIN := torch==2.14.1 torchvision==0.29.1

.PHONY: install test paper html lab clean data models readme packs

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_PIN)
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

# Notebook site (docs/notebooks.md). PROFILE=quick runs offline on the embedded sample data on CPU;
# PROFILE=paper runs the paper's protocol on every dataset present under DATA_ROOT (GPU expected).
PROFILE ?= quick
DATA_ROOT ?=
DEVICE ?= auto
DATASETS ?=
# nbval re-executes the committed notebooks (quick defaults): they read the quick runs already under
# outputs/ (e.g. from `make paper`) and train only what is missing (a fresh clone: a few minutes).
NBVAL := $(PY) -m pytest -q --nbval-lax --nbval-current-env \
	--nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider notebooks/

test: $(STAMP)
	$(PY) -m pytest -q
	$(NBVAL)

models: $(STAMP)
	$(PY) -m gradattn models

# Real data available locally (Debian's dataset-fashion-mnist, ../shared/data) into the data root.
data: $(STAMP)
	$(PY) -m gradattn data prepare $(if $(DATA_ROOT),--data-root $(DATA_ROOT))
	$(PY) -m gradattn data status $(if $(DATA_ROOT),--data-root $(DATA_ROOT))

# Data packs that fit one GPU-machine call (docs/gpu_runbook.md); jpegtran re-codes CIFAR-10's and Tiny ImageNet's JPEGs losslessly.
packs: $(STAMP)
	command -v jpegtran >/dev/null || apt-get install -y libjpeg-turbo-progs
	$(PY) scripts/pack_for_device.py

# Regenerate README.md's generated blocks (the model table); tests/test_readme.py checks them.
readme: $(STAMP)
	$(PY) scripts/update_readme.py

paper: $(STAMP)
	$(PY) -m gradattn.notebooks paper --profile $(PROFILE) --device $(DEVICE) \
		$(if $(DATA_ROOT),--data-root $(DATA_ROOT)) $(if $(DATASETS),--datasets $(DATASETS))

html: $(STAMP)
	$(PY) -m gradattn.notebooks html

lab: $(STAMP)
	$(PY) -m jupyter lab --notebook-dir=notebooks

clean:
	rm -rf outputs .pytest_cache
