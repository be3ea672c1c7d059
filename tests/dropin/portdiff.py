"""The difference between a ported notebook and the upstream notebook it came from.

`<name>.original.json` keeps the upstream code cells verbatim (repository, commit, path);
`<name>.ipynb` is the port, one code cell per upstream cell (`metadata.upstream_cell`). A cell may
differ only by the import swap (`import sagemaker` -> `import nbsage as sagemaker`), or when it is
tagged with why: `data-location` (a download or an S3 transfer through boto3 replaced by local data
or nbsage's S3 calls), `hyperparameters` (a value shrunk to keep the test fast), `library-version`
(a call the installed library no longer has, such as scikit-learn 0.20's `sklearn.externals.joblib`:
nbsage runs the installed library, not the framework_version's), or `removed` (a cell that needs
the network or something nbsage does not provide, replaced by a comment saying so).
`<name>.diff` is the unified diff, kept current by the tests.
"""
from __future__ import annotations

import difflib
import json
from pathlib import Path

IMPORT_SWAPS = {"import sagemaker": "import nbsage as sagemaker"}
TAGS = ("data-location", "hyperparameters", "library-version", "removed")


def load(folder: Path, name: str) -> tuple[dict, list[dict]]:
    import nbformat
    original = json.loads((folder / f"{name}.original.json").read_text())
    nb = nbformat.read(folder / f"{name}.ipynb", as_version=4)
    ported = [{"index": c.metadata.get("upstream_cell"), "source": c.source, "tags": list(c.metadata.get("tags", []))}
              for c in nb.cells if c.cell_type == "code"]
    return original, ported


def unified(original: dict, ported: list[dict]) -> str:
    """Every changed line, cell by cell, as a unified diff."""
    out = []
    for before, after in zip(original["cells"], ported):
        if before["source"] == after["source"]:
            continue
        label = f"cell {before['index']}" + (f" [{', '.join(after['tags'])}]" if after["tags"] else "")
        out += difflib.unified_diff(before["source"].splitlines(), after["source"].splitlines(),
                                    f"upstream {label}", f"port {label}", lineterm="")
    return "\n".join(out) + "\n" if out else ""


def problems(original: dict, ported: list[dict]) -> list[str]:
    """What breaks the rule: cells out of step, or a change that is neither the import swap nor tagged."""
    found = []
    if [c["index"] for c in original["cells"]] != [c["index"] for c in ported]:
        found.append("the port's code cells do not follow the upstream cells one to one")
        return found
    for before, after in zip(original["cells"], ported):
        if before["source"] == after["source"]:
            if after["tags"]:
                found.append(f"cell {before['index']} is tagged {after['tags']} but unchanged")
            continue
        bad_tags = [t for t in after["tags"] if t not in TAGS]
        if bad_tags:
            found.append(f"cell {before['index']}: unknown tags {bad_tags}")
        if after["tags"]:
            continue
        a, b = before["source"].splitlines(), after["source"].splitlines()
        if len(a) != len(b) or any(x != y and IMPORT_SWAPS.get(x.strip()) != y.strip() for x, y in zip(a, b)):
            found.append(f"cell {before['index']} changes more than the import line and is not tagged")
    return found
