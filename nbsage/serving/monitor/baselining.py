"""Baselining jobs: statistics.json and constraints.json suggested from a baseline dataset.

SageMaker runs a baselining job as a processing job of its analyzer container; nbsage runs the same
analysis in the calling process (one pass over one dataset needs no job process) and records the job
under `<NBSAGE_HOME>/monitoring/baselining/<job>.json` in DescribeProcessingJob's shape, so
`BaseliningJob.describe()` and the files it names look as they do on SageMaker.
"""
from __future__ import annotations

import time

from nbsage.arns import arn
from nbsage.errors import DataError, JobError
from nbsage.serving.monitor import datasets, statistics
from nbsage.serving.monitor.storage import join, list_files, load_record, monitoring_dir, read_bytes, save_record, \
    write_json
from nbsage.store.metadata import iso

STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"


def _path(session, job_name: str):
    return monitoring_dir(session) / "baselining" / f"{job_name}.json"


def read_dataset(uri: str, dataset_format) -> datasets.Dataset:
    """A baseline dataset at a path or URL: one file, or every file in a folder (same columns)."""
    files = [f for f in list_files(uri) if not f.rsplit("/", 1)[-1].startswith(".")]
    if not files:
        raise DataError(f"baseline dataset {uri} does not exist or has no files; give a CSV or JSON Lines "
                        "file (or a folder of them) as a local path or s3:// URI")
    merged = None
    for file in files:
        part = datasets.read_baseline(file, read_bytes(file), dataset_format)
        if merged is None:
            merged = part
        elif part.names != merged.names:
            raise DataError(f"baseline dataset {file} has columns {part.names}, not {merged.names} as "
                            f"{files[0]}; a baseline folder's files must share their columns")
        else:
            merged.rows += part.rows
    return merged


def suggest_baseline(session, job_name: str, baseline_dataset: str, dataset_format, output_uri: str) -> dict:
    """Run a baselining job: write statistics.json and constraints.json to `output_uri`; its description."""
    datasets.check_format(dataset_format)
    started = time.time()
    record = {"ProcessingJobName": job_name, "ProcessingJobArn": arn("processing-job", job_name),
              "ProcessingJobStatus": "InProgress", "CreationTime": iso(started),
              "ProcessingStartTime": iso(started),
              "ProcessingInputs": [{"InputName": "baseline_dataset_input",
                                    "S3Input": {"S3Uri": baseline_dataset,
                                                "LocalPath": "/opt/ml/processing/input/baseline_dataset_input"}}],
              "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output",
                                                      "S3Output": {"S3Uri": output_uri,
                                                                   "LocalPath": "/opt/ml/processing/output"}}]},
              "Environment": {"dataset_format": dataset_format}, "MonitoringType": "DataQuality"}
    save_record(_path(session, job_name), record)
    resolved = str(session.resolve_uri(output_uri))
    try:
        data = read_dataset(str(session.resolve_uri(baseline_dataset)), dataset_format)
        stats = statistics.dataset_statistics(data)
        write_json(join(resolved, STATISTICS), stats)
        write_json(join(resolved, CONSTRAINTS), statistics.suggest_constraints(stats))
    except Exception as exc:
        record.update(ProcessingJobStatus="Failed", FailureReason=str(exc), ProcessingEndTime=iso(time.time()))
        save_record(_path(session, job_name), record)
        raise
    record.update(ProcessingJobStatus="Completed", ProcessingEndTime=iso(time.time()),
                  LastModifiedTime=iso(time.time()))
    save_record(_path(session, job_name), record)
    return record


def describe(session, job_name: str) -> dict:
    record = load_record(_path(session, job_name))
    if record is None:
        raise JobError(f"no baselining job named {job_name!r}")
    return record
