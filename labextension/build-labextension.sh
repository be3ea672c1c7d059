#!/bin/sh
# Build the federated extension into ../nbsage/labextension. @jupyterlab/builder needs JupyterLab's
# core package.json (the versions the extension shares with JupyterLab): it is taken from the
# jupyterlab Python package of $PYTHON, else of python3, else of the jupyter-lab on PATH.
set -e
find_core() {
    for py in "$PYTHON" python3 python "$(sed -n '1s/^#!//p' "$(command -v jupyter-lab 2>/dev/null || echo /dev/null)")"; do
        [ -n "$py" ] || continue
        "$py" -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))' 2>/dev/null && return 0
    done
    echo "no Python with jupyterlab found: set PYTHON to one (e.g. PYTHON=.venv/bin/python)" >&2
    return 1
}
core=$(find_core)
exec ./node_modules/.bin/build-labextension --core-path "$core" "$@" .
