"""`make bench`: run every benchmark and write benchmarks/RESULTS.md."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_endpoint  # noqa: E402
import bench_xgboost_training  # noqa: E402

if __name__ == "__main__":
    print("XGBoost training:", bench_xgboost_training.main())
    print("Endpoint:", bench_endpoint.main())
    print("Results written to", Path(__file__).with_name("RESULTS.md"))
