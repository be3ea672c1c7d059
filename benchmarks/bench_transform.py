"""Batch transform throughput against the in-process floor, and memory on a large streamed file.

1,000,000 CSV rows × 30 features (4 objects of 250,000 rows: SageMaker spreads a transform by
object, so instance_count=2 needs at least 2) through an XGBoost model (100 rounds, depth 6) with
`MultiRecord` at the default 6 MB payload, `instance_count=2`, `AssembleWith=Line`. The floor is
the same rows read with pyarrow (multi-threaded C++ CSV) and `xgboost.Booster.inplace_predict`
over all of them in one process, all cores. Both sides read the same files from the page cache
(each is read once first).

Transform times: the whole job (from `transform()` to Completed: model servers started, every
object read, sent, answered and written) and the Transforming phase alone (the job's transitions).
A small transform job runs first, as the floor reads once first: it starts the local place's
pre-warmed runtime, which the timed jobs' supervisors (and their model servers) are forked from.

Memory: one large CSV object streamed by one instance; the peak resident set (VmHWM) of the
job's supervisor (which reads, batches and writes) and of its model server, against the file size.

    python benchmarks/bench_transform.py [--rows 1000000] [--memory-mb 2048] [--no-write]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_section  # noqa: E402

FEATURES, OBJECTS = 30, 4
RUNS = 3  # interleaved floor / transform pairs; medians reported
TRANSFORMER_OPTIONS: dict = {}  # e.g. max_concurrent_transforms, env (set from the command line)


def _write_rows(path: Path, rows: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    table = pa.table({f"f{i}": pa.array(rows[:, i]) for i in range(rows.shape[1])})
    pcsv.write_csv(table, str(path), pcsv.WriteOptions(include_header=False))


def _model(folder: Path):
    import tarfile

    import xgboost as xgb
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20000, FEATURES)).astype(np.float32)
    y = (X[:, :5].sum(axis=1) + 0.3 * rng.normal(size=len(X)) > 0).astype(np.float32)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 6, "eta": 0.1}, xgb.DMatrix(X, label=y), 100)
    booster.save_model(str(folder / "xgboost-model"))
    with tarfile.open(folder / "model.tar.gz", "w:gz") as tar:
        tar.add(folder / "xgboost-model", arcname="xgboost-model")
    return folder / "model.tar.gz", booster


def _floor(files: list[Path], booster) -> tuple[float, float]:
    """(wall seconds, CPU seconds of all threads)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    cpu = time.process_time()
    start = time.perf_counter()
    opts = pcsv.ReadOptions(autogenerate_column_names=True)
    convert = pcsv.ConvertOptions(column_types={f"f{i}": pa.float32() for i in range(FEATURES)})
    tables = [pcsv.read_csv(str(f), read_options=opts, convert_options=convert) for f in files]
    table = pa.concat_tables(tables)
    X = np.column_stack([c.to_numpy() for c in table.columns])
    booster.inplace_predict(X)
    return time.perf_counter() - start, time.process_time() - cpu


class _JobCPU(threading.Thread):
    """CPU seconds of a job's supervisor and its model servers, read from /proc while they run.

    The supervisor is usually forked by the pre-warmed runtime (nbsage.backends.zygote), not by this
    process, so os.times()' children fields never see it (they read 0.0 then). Its own stat file holds
    its user and system time and, once it has reaped them, its servers'; each server's own stat file is
    read too while it runs, so a job whose last moments fall between two samples is still counted.
    """

    def __init__(self, session, job_name: str):
        super().__init__(daemon=True, name="bench-job-cpu")
        self.session, self.job_name = session, job_name
        self.pid: int | None = None
        self.own = self.reaped = 0.0  # the supervisor's own, and its reaped children's
        self.servers: dict[int, float] = {}  # each server's own, at its last sample

    @property
    def seconds(self) -> float:
        return self.own + max(self.reaped, sum(self.servers.values()))

    def run(self) -> None:
        deadline = time.monotonic() + 3600
        while self.pid is None and time.monotonic() < deadline:
            self.pid = self.session.store.get_job(self.job_name)["supervisor_pid"]
            if self.pid is None:
                time.sleep(0.01)  # sampling, not synchronisation: the pid is recorded once the place starts it
        while time.monotonic() < deadline:
            fields = _stat(self.pid)
            if fields is None or fields[0] == b"Z":  # gone, or a zombie (whose stat leaves its children out)
                return
            self.own = max(self.own, _ticks(fields[11:13]))
            self.reaped = max(self.reaped, _ticks(fields[13:15]))
            for child in _children(self.pid):
                server = _stat(child)
                if server is not None:
                    self.servers[child] = max(self.servers.get(child, 0.0), _ticks(server[11:13]))
            time.sleep(0.02)


def _stat(pid: int) -> list[bytes] | None:
    """The fields of /proc/PID/stat after the command (state first: utime, stime, cutime, cstime are [11:15])."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()
    except OSError:
        return None


def _ticks(values: list[bytes]) -> float:
    return sum(int(v) for v in values) / os.sysconf("SC_CLK_TCK")


def _phase_seconds(session, job_name: str, phase: str) -> float | None:
    rows = session.store.transitions(job_name)
    for r in rows:
        if r["status"] == phase and r["end_time"]:
            return r["end_time"] - r["start_time"]
    return None


def _vm_hwm(pid: int) -> int | None:
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def throughput(rows: int, folder: Path) -> dict:
    from nbsage.model import Model
    from nbsage.session import Session
    rng = np.random.default_rng(1)
    data = folder / "in"
    data.mkdir()
    files = []
    per = rows // OBJECTS
    for i in range(OBJECTS):
        path = data / f"part-{i}.csv"
        _write_rows(path, np.round(rng.normal(size=(per, FEATURES)), 4).astype(np.float32))
        files.append(path)
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    archive, booster = _model(folder)
    for f in files:
        f.read_bytes()  # page cache, for both sides
    session = Session.default()
    model = Model(archive, algorithm="xgboost", sagemaker_session=session)
    _floor(files, booster)  # warm-up: the floor's first read pays for pyarrow's set-up
    _warm_up(model, folder)  # and the transform's first job for the pre-warmed runtime's start
    runs = []
    for run in range(RUNS):  # interleaved: floor, transform, floor, transform, ...
        floor, floor_cpu = _floor(files, booster)
        out = folder / f"out-{run}"
        transformer = model.transformer(instance_count=2, strategy="MultiRecord", assemble_with="Line",
                                        accept="text/csv", output_path=str(out), **TRANSFORMER_OPTIONS)
        whole, phase, transform_cpu, desc = _transform(session, transformer, data)
        predicted = sum(len(p.read_bytes().splitlines()) for p in out.glob("*.out"))
        assert predicted == per * OBJECTS, predicted
        runs.append({"floor_s": floor, "floor_cpu": floor_cpu, "whole_s": whole, "phase_s": phase,
                     "transform_cpu": transform_cpu, "load": os.getloadavg()[0]})
        print(f"run {run + 1}: floor {floor:.2f} s, whole job {whole:.2f} s ({floor / whole:.2f}x), Transforming "
              f"{phase:.2f} s ({floor / phase:.2f}x), CPU {floor_cpu:.1f} / {transform_cpu:.1f} s, load "
              f"{runs[-1]['load']:.1f}", flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    rows = per * OBJECTS
    return {"rows": rows, "size_mb": size_mb, **med, "floor_rows_s": rows / med["floor_s"],
            "whole_rows_s": rows / med["whole_s"], "phase_rows_s": rows / med["phase_s"],
            "whole_ratio": statistics.median(r["floor_s"] / r["whole_s"] for r in runs),
            "phase_ratio": statistics.median(r["floor_s"] / r["phase_s"] for r in runs),
            "runs": runs, "max_concurrent": desc["MaxConcurrentTransforms"]}


def _warm_up(model, folder: Path) -> None:
    """One small job first: a session's first local job starts the place's pre-warmed runtime
    (nbsage.backends.zygote) in the background and runs in fresh interpreters itself; the jobs after
    it are forked from that runtime, as a user's second and later jobs are."""
    small = folder / "warm-up"
    small.mkdir()
    _write_rows(small / "part.csv", np.zeros((100, FEATURES), dtype=np.float32))
    from nbsage.backends import zygote
    path = zygote.socket_for(dict(os.environ, PYTHONUNBUFFERED="1"))
    transformer = model.transformer(instance_count=2, strategy="MultiRecord", assemble_with="Line",
                                    output_path=str(folder / "warm-up-out"), **TRANSFORMER_OPTIONS)
    job = transformer.transform(str(small), content_type="text/csv", split_type="Line", wait=False)
    job.wait_quietly(timeout=600)
    deadline = time.monotonic() + 120
    while path is not None and not path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # the pre-warmed runtime imports xgboost and pandas before it listens


def _transform(session, transformer, data: Path) -> tuple[float, float, float, dict]:
    """(whole job s, Transforming phase s, CPU s of the supervisor and its servers, describe)."""
    start = time.perf_counter()
    job = transformer.transform(str(data), content_type="text/csv", split_type="Line", wait=False)
    cpu = _JobCPU(session, job.name)
    cpu.start()
    desc = job.wait_quietly(timeout=3600)
    whole = time.perf_counter() - start
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    cpu.join(60)  # until the supervisor has ended: the supervisor and its model servers, all of the job
    return whole, _phase_seconds(session, job.name, "Transforming") or whole, cpu.seconds, desc


def memory(size_mb: int, folder: Path) -> dict:
    from nbsage.model import Model
    from nbsage.session import Session
    data = folder / "big"
    data.mkdir(parents=True)
    rng = np.random.default_rng(2)
    block = np.round(rng.normal(size=(100000, FEATURES)), 4).astype(np.float32)
    _write_rows(folder / "block.csv", block)
    chunk = (folder / "block.csv").read_bytes()
    with open(data / "big.csv", "wb") as f:
        while f.tell() < size_mb * 2**20:
            f.write(chunk)
    size = (data / "big.csv").stat().st_size
    (folder / "block.csv").unlink()
    archive = folder.parent / "model.tar.gz"
    session = Session.default()
    transformer = Model(archive, algorithm="xgboost", sagemaker_session=session).transformer(
        instance_count=1, strategy="MultiRecord", assemble_with="Line", output_path=str(folder / "big-out"))
    job = transformer.transform(str(data), content_type="text/csv", split_type="Line", wait=False)
    peaks = {"supervisor": 0, "server": 0}
    done = threading.Event()

    def watch():
        while not done.wait(0.2):
            record = session.store.get_job(job.name)
            pid = record["supervisor_pid"]
            if pid:
                peaks["supervisor"] = max(peaks["supervisor"], _vm_hwm(pid) or 0)
                for child in _children(pid):
                    peaks["server"] = max(peaks["server"], _vm_hwm(child) or 0)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    start = time.perf_counter()
    desc = job.wait_quietly(timeout=3600)
    seconds = time.perf_counter() - start
    done.set()
    t.join()
    assert desc["TransformJobStatus"] == "Completed", desc.get("FailureReason")
    (data / "big.csv").unlink()
    return {"file_mb": size / 2**20, "supervisor_mb": peaks["supervisor"] / 2**20,
            "server_mb": peaks["server"] / 2**20, "seconds": seconds, "records": desc["nbsage:RecordsTransformed"]}


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main(rows: int = 1_000_000, memory_mb: int | str = 0, write: bool = True, note: str = "") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NBSAGE_HOME"] = str(Path(tmp) / "home")
        folder = Path(tmp)
        result = throughput(rows, folder)
        sizes = [int(m) for m in str(memory_mb).split(",") if int(m)]
        mems = [memory(size, folder / f"memory-{size}") for size in sizes]
    ratio, whole_ratio = result["phase_ratio"], result["whole_ratio"]
    body = f"""{note}
{result['rows']:,} CSV rows × {FEATURES} features ({result['size_mb']:.0f} MB in {OBJECTS} objects), XGBoost 100 rounds
depth 6, MultiRecord at the default 6 MB payload, instance_count=2, MaxConcurrentTransforms unset (the
container's /execution-parameters decide: its {os.cpu_count()} workers), AssembleWith=Line. Floor: pyarrow read + `inplace_predict` of all
rows in one process. `python benchmarks/bench_transform.py` reproduces it. {len(result['runs'])} runs, each the floor then
the transform, back to back; medians (× floor: the median of the runs' ratios). Load average during
the runs: {', '.join(f"{r['load']:.1f}" for r in result['runs'])} on {os.cpu_count()} cores.

| | seconds | rows/s | × floor | CPU seconds |
|---|---|---|---|---|
| floor: pyarrow + inplace_predict | {result['floor_s']:.2f} | {result['floor_rows_s']:,.0f} | 1.00 | {result['floor_cpu']:.1f} |
| transform, Transforming phase | {result['phase_s']:.2f} | {result['phase_rows_s']:,.0f} | {ratio:.2f} | |
| transform, whole job | {result['whole_s']:.2f} | {result['whole_rows_s']:,.0f} | {whole_ratio:.2f} | {result['transform_cpu']:.1f} |

CPU seconds: all threads of the floor's process; for the transform, the job's supervisor and its two
model servers from start to end (server start-up and model loading included) — the measure that
moves least with other work on a shared machine.
"""
    if mems:
        body += """
Memory: one CSV object streamed by one instance, MultiRecord at 6 MB; peak resident set (VmHWM) of the
job's supervisor (reads, batches, writes the `.out`) and of its model server:

| input object | records | seconds | supervisor peak | model server peak |
|---|---|---|---|---|
"""
        for mem in mems:
            body += (f"| {mem['file_mb']:,.0f} MB | {mem['records']:,} | {mem['seconds']:.0f} | "
                     f"{mem['supervisor_mb']:.0f} MB | {mem['server_mb']:.0f} MB |\n")
    if write:
        write_section("Batch transform", body)
    print(body)
    return {**result, "memory": mems}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-mb", default="0", help="sizes of the streamed file, e.g. 64,2048")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--note", default="")
    parser.add_argument("--max-concurrent-transforms", type=int, default=None)
    parser.add_argument("--runs", type=int, default=RUNS, help="interleaved floor/transform pairs")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="the model servers' env")
    a = parser.parse_args()
    RUNS = a.runs
    if a.max_concurrent_transforms:
        TRANSFORMER_OPTIONS["max_concurrent_transforms"] = a.max_concurrent_transforms
    if a.env:
        TRANSFORMER_OPTIONS["env"] = dict(pair.split("=", 1) for pair in a.env)
    main(a.rows, a.memory_mb, not a.no_write, a.note)
