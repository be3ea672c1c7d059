"""Where nbsage keeps what it knows: job/metric/log/endpoint records in SQLite, artifacts via fsspec."""
from nbsage.store.artifacts import ArtifactStore
from nbsage.store.metadata import MetadataStore

__all__ = ["ArtifactStore", "MetadataStore"]
