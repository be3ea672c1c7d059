# Two commands a user needs: `make demo` and `make test`. Everything runs from .venv.
# `make demo` installs what the product needs (nbsage, its dependencies and JupyterLab);
# `make test` adds the dev extras the suite starts real servers with (moto, a Kernel Gateway,
# Dask, Spark, the SageMaker SDK to compare formats against).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install -q -c constraints.txt
PRODUCT_STAMP := $(VENV)/.installed-product
DEV_STAMP     := $(VENV)/.installed

.PHONY: demo test bench install install-dev clean lab labextension

$(PRODUCT_STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# constraints.txt pins torch to the CPU build (see README: "Why constraints.txt")
	$(PIP) -e .
	# a "python3" kernelspec inside the venv, so papermill and JupyterLab run notebooks with this environment
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (nbsage)" >/dev/null
	touch $(PRODUCT_STAMP)

$(DEV_STAMP): $(PRODUCT_STAMP)
	$(PIP) -e ".[dev]"
	touch $(DEV_STAMP)

install: $(PRODUCT_STAMP)

install-dev: $(DEV_STAMP)

demo: $(PRODUCT_STAMP)
	$(BIN)/python -m nbsage.demo notebooks/quickstart.ipynb

test: $(DEV_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(DEV_STAMP)
	$(BIN)/python benchmarks/run.py

# the nbsage console: JupyterLab on this machine only, opened on the notebooks
lab: $(PRODUCT_STAMP)
	$(BIN)/jupyter lab --ip=127.0.0.1 --ServerApp.root_dir=notebooks

# rebuild the console's front end (labextension/, TypeScript) into nbsage/labextension with Node.js and npm
labextension: $(PRODUCT_STAMP)
	cd labextension && npm ci --no-audit --no-fund && PYTHON=$(abspath $(BIN)/python) npm run build:prod

clean:
	rm -rf $(VENV) notebooks/output .pytest_cache
