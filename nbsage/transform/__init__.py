"""Batch transform: a model over whole data sets offline, as SageMaker's CreateTransformJob runs it.

The API is nbsage.transformer.Transformer (the SDK's shape); this package is the engine a place
runs: `inputs` (the input objects and their `.out` names), `records` (SplitType and BatchStrategy),
`data_processing` (InputFilter, JoinSource, OutputFilter), `servers` (the model servers, one per
instance), `outputs` (whole `.out` files or none), `engine` (requests in flight, in order) and
`job` (the local place's supervisor steps) and `dask_place` (the same over Dask workers).
"""
