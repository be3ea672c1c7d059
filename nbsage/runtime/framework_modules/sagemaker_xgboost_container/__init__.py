"""Stand-in for the SageMaker XGBoost container's package as script-mode scripts import it:
`distributed.rabit_run` and `data_utils.get_dmatrix`."""


def __getattr__(name):
    import nbsage.runtime.framework_modules as fm
    raise fm.missing("sagemaker_xgboost_container", name,
                     "use sagemaker_xgboost_container.distributed.rabit_run / data_utils.get_dmatrix, or xgboost")
