# Put first on PYTHONPATH by tests/dropin: a notebook that reaches the real SageMaker SDK (installed
# by the dev extras) fails here, so a port passes only on nbsage.
raise ImportError("the real SageMaker SDK is blocked in the drop-in tests: this import did not resolve to nbsage "
                  "(use `import nbsage as sagemaker` first)")
