"""The default bucket: `s3://<Session().default_bucket()>/...` backed by the artifact store.

SageMaker notebooks keep their data in the session's default bucket: they `upload_data` a file,
train on the `s3://` URI it returns, and read the model from the job's output path in that bucket.
nbsage has no AWS account, so the default bucket is a name for the artifact root:

- artifact root on a real S3-compatible store (NBSAGE_ARTIFACT_ROOT=s3://bucket/prefix): the default
  bucket is that bucket and its prefix is `default_bucket_prefix`; `s3://` URIs are used as they are.
- an S3-compatible store named by the AWS settings (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, as
  boto3 reads them; MinIO, LocalStack...): the default bucket is a real bucket there, named as below
  and created on first use as the SDK's is; `s3://` URIs are used as they are.
- any other artifact root (a local folder by default): the default bucket is the name
  `sagemaker-<region>-000000000000` (or NBSAGE_DEFAULT_BUCKET), and `s3://<that name>/<key>` means
  `<artifact root>/<key>` — `resolve` turns one into the other, so one call's upload is the next
  call's channel, offline.

A leaf of the store layer: the API resolves URIs when it builds a request, and a place that is
handed an unresolved one can ask here as well.
"""
from __future__ import annotations

import os

from nbsage.store.artifacts import join

LOCAL_ACCOUNT = "000000000000"  # the account id a local role ARN and bucket name carry
S3_SCHEMES = ("s3://", "s3a://", "s3n://")


def region() -> str:
    """The region a notebook is told it runs in: AWS_REGION / AWS_DEFAULT_REGION, else "local"."""
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "local"


def split_s3(url: str) -> tuple[str, str]:
    """("bucket", "key/with/slashes") of an s3:// URL; the key may be empty."""
    for scheme in S3_SCHEMES:
        if url.startswith(scheme):
            bucket, _, key = url[len(scheme):].partition("/")
            return bucket, key
    raise ValueError(f"{url!r} is not an s3:// URL")


def is_s3(url) -> bool:
    return isinstance(url, str) and url.startswith(S3_SCHEMES)


def s3_endpoint() -> str | None:
    """The S3-compatible endpoint the AWS settings name (AWS_ENDPOINT_URL_S3, else AWS_ENDPOINT_URL)."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def backed_by_s3(artifact_root: str) -> bool:
    """Whether the default bucket is a real one: the artifact root is on S3, or the AWS settings
    name an S3-compatible endpoint."""
    return is_s3(artifact_root) or s3_endpoint() is not None


def default_bucket(artifact_root: str) -> str:
    """The default bucket's name for this artifact root."""
    if is_s3(artifact_root):
        return split_s3(artifact_root)[0]
    return os.environ.get("NBSAGE_DEFAULT_BUCKET") or f"sagemaker-{region()}-{LOCAL_ACCOUNT}"


def default_bucket_prefix(artifact_root: str) -> str | None:
    """The key prefix under the default bucket: the artifact root's own prefix on S3, else None
    (as the SDK's when no prefix is configured)."""
    if is_s3(artifact_root):
        return split_s3(artifact_root)[1].strip("/") or None
    return None


def ensure_bucket(name: str) -> None:
    """Create the bucket on the S3-compatible endpoint when it does not exist (the SDK's
    default_bucket() creates its bucket the same way)."""
    import fsspec
    fs = fsspec.filesystem("s3")
    if not fs.exists(name):
        fs.mkdir(name)


def resolve(url, artifact_root: str, bucket: str | None = None):
    """Where `url` really is: `s3://<default bucket>/key` -> `<artifact root>/key` when the default
    bucket is not a real one; anything else (and every URL when it is real) unchanged.

    `bucket` overrides the default bucket's name (`Session(default_bucket=...)`).
    """
    if not is_s3(url) or backed_by_s3(artifact_root):
        return url
    name, key = split_s3(url)
    if name != (bucket or default_bucket(artifact_root)):
        return url
    return join(artifact_root, key) if key.strip("/") else artifact_root
