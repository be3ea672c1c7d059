"""`import nbsage as sagemaker`, then `from sagemaker.inputs import TrainingInput`: the SDK's import
statements resolve to nbsage's modules in code that chose nbsage as its `sagemaker`.

`import nbsage as sagemaker` only binds a name; the notebook's next lines — `from sagemaker import
get_execution_role`, `import sagemaker.amazon.common as smac`, `from sagemaker.serializers import
CSVSerializer` — go through the import system, which knows nothing of that name and would load the
real SDK (or fail where it is not installed). This finder sits first on `sys.meta_path` and answers
for `sagemaker` and `sagemaker.*` only when the code doing the import has `sagemaker` bound to the
nbsage package — the one sign of intent there is — by handing back `nbsage` / `nbsage.<same path>`
(the same module objects, so `sagemaker.estimator.Estimator is nbsage.estimator.Estimator`). Any
other importer gets the real SDK as before, until a module has been aliased: from then on the
process's `sagemaker` is nbsage, as that notebook asked.
"""
from __future__ import annotations

import importlib
import sys

_PREFIX = "sagemaker"
_IMPORT_MACHINERY = ("<frozen importlib", __file__)


def _importer_chose_nbsage() -> bool:
    """Whether the code running the import statement has `sagemaker` bound to the nbsage package."""
    nbsage = sys.modules.get("nbsage")
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_IMPORT_MACHINERY):
        frame = frame.f_back
    if frame is None or nbsage is None:
        return False
    return frame.f_globals.get(_PREFIX) is nbsage or frame.f_locals.get(_PREFIX) is nbsage


# the finder and loader follow the import protocols without importlib.abc's base classes: that
# module pulls in importlib.resources, pathlib and tempfile, tripling `import nbsage`'s time
class _Alias:
    """Loads `sagemaker.X` as the already importable `nbsage.X` (the same module object)."""

    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self._spec = getattr(module, "__spec__", None)
        return module

    def exec_module(self, module) -> None:
        # the import system stamped the alias's spec on nbsage's module: give it its own back
        if self._spec is not None:
            module.__spec__ = self._spec


class SDKAliasFinder:
    """Resolves `sagemaker[.X]` to `nbsage[.X]` for importers that chose nbsage as `sagemaker`."""

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != _PREFIX and not fullname.startswith(_PREFIX + "."):
            return None
        aliased = sys.modules.get(_PREFIX) is sys.modules.get("nbsage")
        if not aliased and not _importer_chose_nbsage():
            return None
        import importlib.util
        real = "nbsage" + fullname[len(_PREFIX):]
        if importlib.util.find_spec(real) is None:
            raise ModuleNotFoundError(f"No module named {fullname!r}: nbsage (imported as sagemaker) has no "
                                      f"{real}", name=fullname)
        return importlib.util.spec_from_loader(fullname, _Alias(real))


def install() -> None:
    """Put the finder first on sys.meta_path (once)."""
    if not any(isinstance(f, SDKAliasFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, SDKAliasFinder())
