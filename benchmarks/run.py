"""`make bench`: run every benchmark and write benchmarks/RESULTS.md."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_autoscaling  # noqa: E402
import bench_blazingtext  # noqa: E402
import bench_capture  # noqa: E402
import bench_deepar  # noqa: E402
import bench_endpoint  # noqa: E402
import bench_formats  # noqa: E402
import bench_mlflow  # noqa: E402
import bench_object2vec  # noqa: E402
import bench_place_startup  # noqa: E402
import bench_places  # noqa: E402
import bench_reliability  # noqa: E402
import bench_seq2seq  # noqa: E402
import bench_transform  # noqa: E402
import bench_variants  # noqa: E402
import bench_xgboost_training  # noqa: E402

if __name__ == "__main__":
    print("XGBoost training:", bench_xgboost_training.main())
    print("Endpoint:", bench_endpoint.main())
    print("DeepAR vs GluonTS:", bench_deepar.main())
    print("Channel formats:", bench_formats.main())
    print("BlazingText vs fastText and gensim:", bench_blazingtext.main())
    print("Places:", bench_places.main())
    print("Place start-up overhead:", bench_place_startup.main())
    print("Reliability (load and fault):", bench_reliability.main())
    print("Batch transform:", bench_transform.main(memory_mb="64,2048"))
    print("Endpoint variants (front, shadow):", bench_variants.main())
    print("Automatic scaling (1, 2, 4 instances):", bench_autoscaling.main())
    print("Data capture:", bench_capture.main())
    print("Seq2Seq vs the PyTorch tutorial's seq2seq:", bench_seq2seq.main())
    print("Object2Vec vs a PyTorch siamese model:", bench_object2vec.main())
    print("Endpoint against MLflow models serve (its own venv):", bench_mlflow.main([]))
    print("Results written to", Path(__file__).with_name("RESULTS.md"))
