"""What every notebook generator here shares: ("md" | "params" | "code", source) cells -> a notebook.

A "params" cell is tagged `parameters`, so papermill (and `python -m nbsage.demo -p NAME VALUE`)
can override it.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def build(cells) -> nbformat.NotebookNode:
    nb = new_notebook()
    for kind, source in cells:
        if kind == "md":
            nb.cells.append(new_markdown_cell(source))
        else:
            cell = new_code_cell(source)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def write(cells, name: str) -> Path:
    """Write notebooks/<name> from the cells and say where."""
    out = Path(__file__).with_name(name)
    nbformat.write(build(cells), out)
    print("wrote", out)
    return out
