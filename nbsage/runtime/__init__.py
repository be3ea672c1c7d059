"""The "container": SageMaker's contract run as a plain process on a job root.

Nothing here imports the store, backends, serving or any face: the runtime must run on a remote
host that has only nbsage installed and a job root.
"""
