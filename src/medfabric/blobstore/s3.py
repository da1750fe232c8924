"""An S3-compatible bucket as a backend (SeaweedFS, MinIO, Ceph RGW, AWS), through boto3.

Objects are immutable: packs are uploaded whole. Durability and replication are the object
store's; a put returns once the store has acknowledged it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from medfabric.blobstore.backend import Backend, BackendError, Capacity, ObjectInfo


@dataclass(frozen=True)
class S3Settings:
    endpoint: str | None
    bucket: str
    prefix: str = ""
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"


class S3Backend(Backend):
    kind = "s3"
    supports_append = False

    def __init__(self, location_id: int, settings: S3Settings) -> None:
        import boto3
        from botocore.config import Config

        self.location_id = location_id
        self.settings = settings
        self.uri = f"s3://{settings.bucket}/{settings.prefix}"
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=settings.endpoint,
            aws_access_key_id=settings.access_key,
            aws_secret_access_key=settings.secret_key,
            region_name=settings.region,
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"},
                max_pool_connections=16,
                s3={"addressing_style": "path"},
            ),
        )

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.head_bucket(Bucket=self.settings.bucket)
        except ClientError:
            try:
                self._client.create_bucket(Bucket=self.settings.bucket)
            except ClientError as error:
                raise BackendError(f"cannot create bucket {self.settings.bucket}: {error}") from error

    def _key(self, name: str) -> str:
        return self.settings.prefix + name

    def put(self, name: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.settings.bucket, Key=self._key(name), Body=data)
        except Exception as error:
            raise BackendError(f"{self.uri}: cannot store {name}: {error}") from error

    def read(self, name: str, offset: int, length: int) -> bytes:
        if length == 0:
            return b""
        try:
            response = self._client.get_object(
                Bucket=self.settings.bucket,
                Key=self._key(name),
                Range=f"bytes={offset}-{offset + length - 1}",
            )
            data: bytes = response["Body"].read()
        except Exception as error:
            raise BackendError(f"{self.uri}: cannot read {name}: {error}") from error
        if len(data) != length:
            raise BackendError(f"{self.uri}: {name} is shorter than {offset + length} bytes")
        return data

    def delete(self, name: str) -> None:
        try:
            self._client.delete_object(Bucket=self.settings.bucket, Key=self._key(name))
        except Exception as error:
            raise BackendError(f"{self.uri}: cannot delete {name}: {error}") from error

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        strip = len(self.settings.prefix)
        for page in paginator.paginate(Bucket=self.settings.bucket, Prefix=self._key(prefix)):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][strip:], int(item["Size"]))

    def stat(self, name: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        try:
            response = self._client.head_object(Bucket=self.settings.bucket, Key=self._key(name))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise BackendError(f"{self.uri}: cannot stat {name}: {error}") from error
        return ObjectInfo(name, int(response["ContentLength"]))

    def capacity(self) -> Capacity | None:
        return None

    def close(self) -> None:
        self._client.close()
