"""ipywidgets forms for nbsage: `TrainingForm()` builds a training job from an algorithm's
declaration (see `nbsage.notebook.forms`)."""
from nbsage.notebook.forms import TrainingForm

__all__ = ["TrainingForm"]
