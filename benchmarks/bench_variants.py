"""What an endpoint's front costs: p50/p99 of one-row requests direct to a model server vs through the front.

The same small linear model (numpy, code/inference.py) is served three ways at once: a plain
`deploy()` endpoint (one direct model server, as before variants existed), an endpoint of one
production variant behind its front (nbsage.serving.front), and the same with a shadow variant
receiving a copy of every request. One keep-alive client sends REQUESTS requests to each through
`invoke_endpoint` (what Predictor.predict calls), in interleaved rounds so that load on the machine
hits all three alike. The difference of the p50s is what the front adds; the shadow row shows that a
shadow copy does not add to the caller's latency.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

REQUESTS, ROUND = 3000, 250


def main(requests: int = REQUESTS, write: bool = True) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBSAGE_HOME"] = str(Path(tmp) / "home")
        from support import make_tarball
        from nbsage.serving import endpoints
        from nbsage.session import Session, production_variant
        session = Session()
        archive = make_tarball(Path(tmp))
        session.create_model("linear", container_defs={"ModelDataUrl": str(archive)})
        endpoints.deploy(session, "direct", str(archive))
        session.endpoint_from_production_variants("front", [production_variant("linear", "local", 1, "A")])
        session.endpoint_from_production_variants("shadowed", [production_variant("linear", "local", 1, "A")],
                                                  shadow_production_variants=[production_variant("linear", "local", 1, "S")])
        names = ("direct", "front", "shadowed")
        times: dict[str, list[float]] = {n: [] for n in names}
        try:
            for name in names:  # warm-up
                for _ in range(200):
                    endpoints.invoke_endpoint(session, name, b"1,2,3", "text/csv", "text/csv")
            for _ in range(max(1, requests // ROUND)):
                for name in names:
                    out = times[name]
                    for _ in range(ROUND):
                        t = time.perf_counter()
                        endpoints.invoke_endpoint(session, name, b"1,2,3", "text/csv", "text/csv")
                        out.append(time.perf_counter() - t)
        finally:
            for name in names:
                endpoints.delete_endpoint(session, name)
    result = {}
    for name in names:
        values = np.asarray(times[name]) * 1e3
        result[f"{name}_p50_ms"] = float(np.percentile(values, 50))
        result[f"{name}_p99_ms"] = float(np.percentile(values, 99))
    result["front_adds_p50_ms"] = result["front_p50_ms"] - result["direct_p50_ms"]
    result["shadow_adds_p50_ms"] = result["shadowed_p50_ms"] - result["front_p50_ms"]
    if write:
        _write(result, requests)
    return result


def _write(r: dict, requests: int) -> None:
    from common import write_section
    load = os.getloadavg()[0]
    body = f"""
One-row CSV requests to a small linear model through `invoke_endpoint` (one keep-alive client,
{requests} requests per endpoint in interleaved rounds of {ROUND}; `python benchmarks/bench_variants.py`).
Load average when it ended: {load:.1f} on {os.cpu_count()} cores{" (a loaded machine: other work ran alongside)" if load > (os.cpu_count() or 1) else ""}.

| endpoint | p50 | p99 |
|---|---|---|
| plain `deploy()`: one direct model server | {r["direct_p50_ms"]:.3f} ms | {r["direct_p99_ms"]:.3f} ms |
| one production variant behind the front | {r["front_p50_ms"]:.3f} ms | {r["front_p99_ms"]:.3f} ms |
| the same with a shadow getting a copy of every request | {r["shadowed_p50_ms"]:.3f} ms | {r["shadowed_p99_ms"]:.3f} ms |

The front adds **{r["front_adds_p50_ms"]:.3f} ms** at p50 (one loopback hop and its parsing); a shadow copying
every request adds **{r["shadow_adds_p50_ms"]:.3f} ms**: copies leave after the caller's answer and a
shadow's model servers run at a lower CPU priority, but here the shadow's work shares the same cores
(on SageMaker it has instances of its own). A plain one-instance `deploy()` keeps the direct server.
"""
    write_section("Endpoint variants: what the front and a shadow add", body)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-write"]
    print(main(int(args[0]) if args else REQUESTS, write="--no-write" not in sys.argv))
