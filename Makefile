# Two commands a user needs: `make demo` and `make test`. Everything runs from .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# constraints.txt pins torch to the CPU build (see README: "Why constraints.txt")
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	# a "python3" kernelspec inside the venv, so papermill runs notebooks with this environment
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (nbsage)" >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m nbsage.demo notebooks/quickstart.ipynb

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) notebooks/output .pytest_cache
