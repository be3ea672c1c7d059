"""`sagemaker.s3`: S3Uploader / S3Downloader and the URI helpers notebooks use.

URIs in the session's default bucket resolve into the artifact store (nbsage.store.buckets), so
`S3Uploader.upload(...)` then `S3Downloader.list(...)` work offline; any other URI goes through
fsspec (s3fs for a real bucket, with the usual AWS settings).
"""
from __future__ import annotations

import os
from pathlib import Path

from nbsage.errors import ChannelError
from nbsage.store.buckets import split_s3


def _session(sagemaker_session=None):
    if sagemaker_session is not None:
        return sagemaker_session
    from nbsage.session import Session
    return Session.default()


def _fs(url: str):
    """(filesystem, path) of a resolved URL or local path."""
    from nbsage.store.artifacts import is_local, local_path
    if is_local(url):
        import fsspec
        return fsspec.filesystem("file"), str(Path(local_path(url)).expanduser())
    import fsspec
    return fsspec.core.url_to_fs(url)


def parse_s3_url(url: str) -> tuple[str, str]:
    """(bucket, key) of an s3:// URL, as sagemaker.s3.parse_s3_url."""
    try:
        return split_s3(url)
    except ValueError:
        raise ChannelError(f"{url!r} is not an S3 URI; expected s3://bucket/key") from None


def s3_path_join(*args: str, with_end_slash: bool = False) -> str:
    """Join parts with '/' without doubling slashes (keeps the s3:// of a first part)."""
    parts = [str(a) for a in args if a is not None and str(a) != ""]
    if not parts:
        return ""
    head, rest = parts[0], parts[1:]
    scheme = ""
    if "://" in head:
        scheme, head = head.split("://", 1)
        scheme += "://"
    joined = "/".join([p.strip("/") for p in [head, *rest] if p.strip("/")])
    return scheme + joined + ("/" if with_end_slash else "")


def write_bytes(data: bytes, s3_uri: str, sagemaker_session=None) -> str:
    """Write `data` as the object at `s3_uri` (atomically, through the artifact store)."""
    import tempfile
    session = _session(sagemaker_session)
    target = session.resolve_uri(s3_uri)
    with tempfile.NamedTemporaryFile(prefix="nbsage-s3-", delete=False) as tmp:
        tmp.write(data)
    try:
        session.artifacts.put_file(tmp.name, target)
    finally:
        os.unlink(tmp.name)
    return s3_uri


def read_bytes(s3_uri: str, sagemaker_session=None) -> bytes:
    session = _session(sagemaker_session)
    fs, path = _fs(session.resolve_uri(s3_uri))
    if not fs.isfile(path):
        raise ChannelError(f"{s3_uri} is not an object (nothing was written there)")
    with fs.open(path, "rb") as f:
        return f.read()


class S3Uploader:
    """Upload local files, text and bytes to S3 URIs (sagemaker.s3.S3Uploader)."""

    @staticmethod
    def upload(local_path, desired_s3_uri: str, kms_key=None, sagemaker_session=None, callback=None) -> str:
        """Upload a file or a folder under `desired_s3_uri`; the URI of the uploaded file(s)."""
        bucket, key = parse_s3_url(desired_s3_uri)
        return _session(sagemaker_session).upload_data(local_path, bucket=bucket, key_prefix=key)

    @staticmethod
    def upload_string_as_file_body(body: str, desired_s3_uri: str | None = None, kms_key=None,
                                   sagemaker_session=None) -> str:
        return write_bytes(body.encode(), desired_s3_uri, sagemaker_session)

    @staticmethod
    def upload_bytes(b, s3_uri: str, kms_key=None, sagemaker_session=None) -> str:
        data = b.getvalue() if hasattr(b, "getvalue") else bytes(b)
        return write_bytes(data, s3_uri, sagemaker_session)


class S3Downloader:
    """Read, list and download S3 objects (sagemaker.s3.S3Downloader)."""

    @staticmethod
    def list(s3_uri: str, sagemaker_session=None) -> list[str]:
        """The URIs of the objects under `s3_uri` (a prefix), sorted."""
        session = _session(sagemaker_session)
        base = s3_uri.rstrip("/")
        resolved = session.resolve_uri(base)
        fs, path = _fs(resolved)
        if fs.isfile(path):
            return [base]
        if not fs.exists(path):
            return []
        found = []
        for item in sorted(fs.find(path)):
            rel = item[len(path.rstrip("/")):].lstrip("/")
            if rel and not any(part.startswith(".") and part.endswith(".tmp") for part in rel.split("/")):
                found.append(f"{base}/{rel}")
        return found

    @staticmethod
    def read_file(s3_uri: str, sagemaker_session=None) -> str:
        return read_bytes(s3_uri, sagemaker_session).decode("utf-8")

    @staticmethod
    def read_bytes(s3_uri: str, sagemaker_session=None) -> bytes:
        return read_bytes(s3_uri, sagemaker_session)

    @staticmethod
    def download(s3_uri: str, local_path, kms_key=None, sagemaker_session=None) -> list[str]:
        """Download the object, or every object under the prefix, into the folder `local_path`
        (keys below the prefix keep their folders); the local paths written."""
        from nbsage.paths import landing_path
        session = _session(sagemaker_session)
        base = s3_uri.rstrip("/")
        written = []
        single = S3Downloader.list(base, session) == [base]
        for uri in S3Downloader.list(base, session):
            key = uri.rsplit("/", 1)[-1] if single else uri[len(base) + 1:]
            target = landing_path(local_path, key, what=f"download of {s3_uri}", error=ChannelError)
            target.parent.mkdir(parents=True, exist_ok=True)
            fs, path = _fs(session.resolve_uri(uri))
            fs.get_file(path, str(target))
            written.append(str(target))
        return written
