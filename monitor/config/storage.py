"""Settings section ``[storage]``: the database, the data folder and the blob store.

Pure pydantic; :mod:`monitor.config` assembles and loads it. The S3 secret comes from the
environment (``MONITOR_STORAGE__S3_SECRET_ACCESS_KEY``) or the file named by
``s3_secret_access_key_file``, never from a committed TOML.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class StorageSettings(BaseModel):
    """Where state lives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: str = Field("data", description="Folder for the database, indices and evidence.")
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at <data_dir>/monitor.db."
    )
    blob_url: str = Field(
        "", description="Blob store of gallery copies, uploads, evidence and job results, for "
        "every process: "
        "empty (data_dir), a folder or file:// URL (a mount shared by several machines), or "
        "s3://bucket/prefix (S3-compatible; pip install 'monitor[s3]').")
    s3_endpoint_url: str = Field("", description="S3-compatible endpoint such as "
                                 "http://minio:9000 (path-style addressing); empty: AWS.")
    s3_region: str = Field("", description="S3 region; empty: the SDK's default.")
    s3_access_key_id: str = Field("", description="S3 access key id; empty, with no secret "
                                  "key: boto3's own chain (AWS_* variables, ~/.aws, a role).")
    s3_secret_access_key: SecretStr = Field(
        SecretStr(""), description="Set MONITOR_STORAGE__S3_SECRET_ACCESS_KEY.")
    s3_secret_access_key_file: str = Field("", description="File holding that key instead.")
