"""nbsage: the SageMaker workflow in Jupyter, on your own machines."""
__version__ = "0.1.0"
