"""BlazingText: Word2Vec (cbow, skipgram, batch_skipgram) and fastText-style text classification.

`declaration` says what the algorithm accepts; `corpus` reads the channels (and
`classifier_data` encodes them for the classifier); `training` picks the engine and schedule
for `word2vec` and `supervised`, which train with the compiled hogwild kernels of `kernels`
(numba) on the CPU or the batched PyTorch updates of `torch_kernels` on a GPU; `model` is the
saved model and its files; `inference` serves it; `sample_data` makes text to try it on. Only
the declaration is imported here, so looking the algorithm up stays cheap.
"""
from nbsage.algorithms.blazingtext.declaration import ALGORITHM

__all__ = ["ALGORITHM"]
