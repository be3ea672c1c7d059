
import io, os
import joblib
import numpy as np
import pandas as pd

def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "preprocessor.joblib"))

def input_fn(body, content_type):
    if content_type != "text/csv":
        raise ValueError(f"this preprocessor reads text/csv, not {content_type}")
    return pd.read_csv(io.StringIO(body), header=None, names=["age", "income", "city"])

def predict_fn(data, model):
    return model.transform(data)

def output_fn(prediction, accept):
    buffer = io.StringIO()
    np.savetxt(buffer, np.asarray(prediction), delimiter=",", fmt="%.9g")
    return buffer.getvalue(), "text/csv"
