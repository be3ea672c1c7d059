"""Linear Learner: SageMaker's parallel linear models, in numpy.

`declaration` says what the algorithm accepts; `settings` resolves `auto` and draws the parallel
models' settings; `losses`, `optim` and `evaluation` are the pieces `training` puts together;
`inference` is the saved model and the handler that serves it. Only the declaration is imported
here, so looking the algorithm up stays cheap.
"""
from nbsage.algorithms.linear_learner.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
