"""What data capture costs a request: endpoint latency with capture off and with every request captured.

One small model (a dot product in user inference code, so the model's own time is tiny and the
capture's share shows) is deployed twice on 127.0.0.1: without a DataCaptureConfig and with
sampling_percentage=100 to a local folder. One keep-alive client sends the same one-row CSV request
to each, interleaved in rounds so load on the machine falls on both alike; p50/p99 are compared, and
the captured records counted after the endpoint stops (every request must be there).
"""
from __future__ import annotations

import http.client
import json
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

from common import write_section

ROUNDS, PER_ROUND = 10, 200
INFERENCE = """
import os
import numpy as np

def model_fn(model_dir):
    return np.load(os.path.join(model_dir, "weights.npy"))

def predict_fn(data, model):
    return np.atleast_2d(np.asarray(data, dtype=float)) @ model
"""


def _model(folder: Path) -> Path:
    src = folder / "src"
    (src / "code").mkdir(parents=True)
    np.save(src / "weights.npy", np.arange(1.0, 11.0))
    (src / "code" / "inference.py").write_text(INFERENCE)
    archive = folder / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for entry in sorted(src.iterdir()):
            tar.add(entry, arcname=entry.name)
    return archive


def _client(url: str):
    host, port = url.split("//")[1].rstrip("/").split(":")
    return http.client.HTTPConnection(host, int(port))


def _send(conn, n: int, out: list) -> None:
    body = b"1,2,3,4,5,6,7,8,9,10"
    headers = {"Content-Type": "text/csv", "Accept": "text/csv"}
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/invocations", body=body, headers=headers)
        conn.getresponse().read()
        out.append(time.perf_counter() - t)


def main() -> dict:
    import os
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        os.environ["NBSAGE_HOME"] = str(tmp / "home")
        from nbsage.model_monitor import DataCaptureConfig
        from nbsage.serving import endpoints
        from nbsage.session import Session
        session = Session()
        archive = _model(tmp)
        capture = DataCaptureConfig(enable_capture=True, sampling_percentage=100, destination_s3_uri=str(tmp / "dc"))
        plain = endpoints.deploy(session, "bench-plain", str(archive))["Url"]
        captured = endpoints.deploy(session, "bench-capture", str(archive), data_capture_config=capture)["Url"]
        conns = {"off": _client(plain), "on": _client(captured)}
        for conn in conns.values():
            _send(conn, 100, [])  # warm-up
        times: dict[str, list] = {"off": [], "on": []}
        for _ in range(ROUNDS):
            for key, conn in conns.items():
                _send(conn, PER_ROUND, times[key])
        for conn in conns.values():
            conn.close()
        endpoints.delete_endpoint(session, "bench-plain")
        endpoints.delete_endpoint(session, "bench-capture")  # writes what is still queued
        records = sum(len(p.read_text().splitlines()) for p in (tmp / "dc").rglob("*.jsonl"))
    ms = {k: (float(np.percentile(v, 50)) * 1000, float(np.percentile(v, 99)) * 1000) for k, v in times.items()}
    result = {"p50_off_ms": round(ms["off"][0], 3), "p99_off_ms": round(ms["off"][1], 3),
              "p50_on_ms": round(ms["on"][0], 3), "p99_on_ms": round(ms["on"][1], 3),
              "requests_captured": records, "requests_sent": ROUNDS * PER_ROUND + 100}
    write_section("Data capture", "```\n" + json.dumps(result, indent=2) + "\n```\n"
                  "One keep-alive client, one-row CSV requests, capture off vs every request captured "
                  "(sampling_percentage=100, local folder), interleaved rounds; `benchmarks/bench_capture.py`.")
    return result


if __name__ == "__main__":
    print(main())
