"""The test pipeline's data and models: raw rows with a text column, a scikit-learn preprocessor
(scale + one-hot) and a booster trained on its output, as model.tar.gz files."""
from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np

CODE = Path(__file__).parent / "preprocess_code"
CITIES = ["paris", "lyon", "nice", "lille"]


def raw_rows(n: int, seed: int = 0) -> list[tuple[float, float, str]]:
    rng = np.random.default_rng(seed)
    ages = rng.normal(40, 10, n).round(1)
    incomes = rng.normal(50000, 15000, n).round(0)
    cities = rng.choice(CITIES, n)
    return [(float(a), float(i), str(c)) for a, i, c in zip(ages, incomes, cities)]


def to_csv(rows) -> str:
    return "".join(f"{a:g},{i:g},{c}\n" for a, i, c in rows)


def frame(rows):
    import pandas as pd
    return pd.DataFrame(rows, columns=["age", "income", "city"])


def tarball(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def build_parts(folder: Path, n: int = 300):
    """(preprocessor, booster, raw training rows); writes preprocessor.tar.gz and xgboost.tar.gz in folder."""
    import joblib
    import xgboost as xgb
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    rows = raw_rows(n)
    prep = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                              ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])], sparse_threshold=0)
    features = prep.fit_transform(frame(rows))
    labels = np.array([(a > 40) != (c in ("paris", "nice")) for a, _, c in rows], dtype=float)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1},
                        xgb.DMatrix(features, labels), 10)
    buffer = io.BytesIO()
    joblib.dump(prep, buffer)
    tarball(Path(folder) / "preprocessor.tar.gz", {"preprocessor.joblib": buffer.getvalue()})
    tarball(Path(folder) / "xgboost.tar.gz", {"xgboost-model": bytes(booster.save_raw("ubj"))})
    return prep, booster, rows
