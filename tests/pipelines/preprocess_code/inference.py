"""A scikit-learn preprocessor as SageMaker inference code: raw CSV rows (age, income, city) in,
scaled numbers and one-hot cities out as CSV, for the XGBoost stage after it."""
import io
import os

import joblib
import numpy as np

COLUMNS = ["age", "income", "city"]


def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "preprocessor.joblib"))


def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"this preprocessor reads text/csv, not {content_type}")
    import pandas as pd
    return pd.read_csv(io.StringIO(body), header=None, names=COLUMNS)


def predict_fn(data, model):
    return model.transform(data)


def output_fn(prediction, accept):
    dense = prediction.toarray() if hasattr(prediction, "toarray") else np.asarray(prediction)
    if accept == "application/json":
        import json
        return json.dumps(dense.tolist()), "application/json"
    buffer = io.StringIO()
    np.savetxt(buffer, dense, delimiter=",", fmt="%.9g")
    return buffer.getvalue(), "text/csv"
