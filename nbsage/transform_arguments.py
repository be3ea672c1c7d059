"""The transform faces' argument grammar: what `%sm_transform` / `%%sm_transform` and `nbsage transform` accept.

    %sm_transform JOB_OR_MODEL --data SRC [--content-type text/csv --split-type Line ...]
    nbsage transform JOB_OR_MODEL --data SRC [...]

JOB_OR_MODEL is a model recorded by `model.transformer()` / `estimator.transformer()`, or a completed
training job of a built-in algorithm. Settings come from the flags, over a YAML mapping (a magic's
cell body, or `--config FILE`) whose keys are the Transformer's and transform()'s keyword names
(`split_type: Line`, `input_filter: "$[1:]"`); a key neither takes is refused, naming it.
Both faces call `transform_call` and show `transform_rows`; nothing here imports IPython.
"""
from __future__ import annotations

from nbsage.arguments import arg, environment, place_options, read_yaml_mapping
from nbsage.errors import ValidationError, did_you_mean

TRANSFORMER_KEYS = ("instance_count", "instance_type", "strategy", "assemble_with", "output_path", "accept",
                    "max_concurrent_transforms", "max_payload", "env", "base_transform_job_name")
TRANSFORM_KEYS = ("data_type", "content_type", "compression_type", "split_type", "input_filter", "output_filter",
                  "join_source", "job_name", "model_client_config")

TRANSFORM = [
    arg("model", metavar="JOB_OR_MODEL", help="a model from model.transformer()/estimator.transformer(), or a "
                                              "completed training job of a built-in algorithm"),
    arg("--data", metavar="SRC", help="the input: a file, a folder, a key prefix or any fsspec URL (s3://...)"),
    arg("--data-type", metavar="T", help="S3Prefix (default) or ManifestFile"),
    arg("--content-type", metavar="CT", help="the records' content type, e.g. text/csv"),
    arg("--split-type", metavar="T", help="None (default), Line, RecordIO or TFRecord"),
    arg("--compression-type", metavar="T", help="None (default) or Gzip"),
    arg("--strategy", metavar="S", help="MultiRecord or SingleRecord"),
    arg("--assemble-with", metavar="A", help="None (default) or Line"),
    arg("--accept", metavar="CT", help="the content type of the output"),
    arg("--output-path", metavar="DEST", help="where the .out files go (default: the artifact store)"),
    arg("--instance-count", type=int, metavar="N", help="model servers (local) or Dask workers (default: 1)"),
    arg("--instance-type", metavar="TYPE", help="instance type to record (default: local)"),
    arg("--max-payload", type=float, metavar="MB", help="MaxPayloadInMB (default: 6)"),
    arg("--max-concurrent-transforms", type=int, metavar="N", help="requests in flight per instance"),
    arg("--input-filter", metavar="JSONPATH", help="what the model gets, e.g. '$[1:]'"),
    arg("--output-filter", metavar="JSONPATH", help="what the output keeps, e.g. '$[0,-1]'"),
    arg("--join-source", metavar="J", help="Input (join each record with its prediction) or None"),
    arg("--env", action="append", default=[], metavar="KEY=VALUE", help="an environment variable (repeatable)"),
    arg("--config", metavar="FILE", help="settings from a YAML file (keys as the Transformer's keywords)"),
    arg("--name", metavar="JOB", help="the job name (default: generated)"),
    arg("--backend", metavar="PLACE", help="where the job runs: local (default) or dask"),
    arg("--no-wait", action="store_true", help="start the job and return at once"),
    arg("--quiet", action="store_true", help="follow the job without showing its log lines"),
]


def settings(args, body: str | None = None) -> tuple[dict, dict]:
    """(Transformer keywords, transform() keywords) from the flags over the YAML body/--config."""
    given: dict = {}
    if getattr(args, "config", None):
        from pathlib import Path
        path = Path(args.config).expanduser()
        if not path.is_file():
            raise ValidationError(f"--config {args.config}: no such file")
        given.update(read_yaml_mapping(path.read_text(), str(path)))
    if body and body.strip():
        given.update(read_yaml_mapping(body, "the cell"))
    accepted = TRANSFORMER_KEYS + TRANSFORM_KEYS + ("data",)
    for key in given:
        if key not in accepted:
            raise ValidationError(f"{key!r} is not a transform setting{did_you_mean(key, accepted)}; settings are "
                                  f"{', '.join(accepted)}")
    flags = {key: getattr(args, key, None) for key in accepted if key not in ("env", "job_name")}
    flags["job_name"] = args.name
    given.update({k: v for k, v in flags.items() if v is not None})
    env = dict(given.get("env") or {})
    env.update(environment(args.env))
    if env:
        given["env"] = env
    transformer = {k: given[k] for k in TRANSFORMER_KEYS if k in given}
    transform = {k: given[k] for k in TRANSFORM_KEYS + ("data",) if k in given}
    if not transform.get("data"):
        raise ValidationError("a transform needs --data SRC: a file, a folder, a key prefix or an fsspec URL")
    return transformer, transform


def transform_call(args, session, body: str | None = None, wait: bool = True):
    """Start the transform job a face's arguments describe; returns the TransformJob (followed when `wait`)."""
    from nbsage.transformer import Transformer
    transformer_kw, transform_kw = settings(args, body)
    backend = args.backend or "local"
    options = place_options(args, backend) if hasattr(args, "scheduler") else {}
    transformer = Transformer(args.model, sagemaker_session=session, backend=backend, **options, **transformer_kw)
    return transformer.transform(wait=wait and not args.no_wait, logs=not args.quiet, **transform_kw)


TRANSFORM_HEADER = ["NAME", "STATUS", "MODEL", "RECORDS", "OBJECTS", "CREATED", "OUTPUT"]


def transform_rows(session, limit: int = 50) -> list[list[str]]:
    """One row per transform job, newest first (the faces' job lists)."""
    from nbsage.transformer import TransformJob
    session.watch_jobs()
    rows = []
    for record in session.store.list_jobs(limit=limit, kind="transform"):
        desc = TransformJob(record["name"], session).describe()
        rows.append([desc["TransformJobName"], desc["TransformJobStatus"], desc["ModelName"],
                     f"{desc['nbsage:RecordsTransformed']:,}",
                     f"{desc['nbsage:ObjectsTransformed']}/{desc['nbsage:ObjectsTotal']}",
                     (desc["CreationTime"] or "")[:19].replace("T", " "), desc["TransformOutput"].get("S3OutputPath", "")])
    return rows
