"""S3 objects in the results bucket."""
from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import NotFound, TransientError

_RETRYABLE = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "503", "500"}


def _raise_if_retryable(error: ClientError) -> None:
    if error.response.get("Error", {}).get("Code") in _RETRYABLE:
        raise TransientError("S3 is busy; try again") from error


class S3Blobs:
    """Text objects under one bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def put_text(self, key: str, body: str, content_type: str) -> None:
        """Write an object."""
        try:
            self._s3.put_object(Bucket=self._bucket, Key=key, Body=body.encode("utf-8"),
                                ContentType=content_type)
        except ClientError as error:
            _raise_if_retryable(error)
            raise

    def get_text(self, key: str) -> str:
        """Read an object; NotFound if it is missing."""
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error.response["Error"]["Code"] in {"NoSuchKey", "404"}:
                raise NotFound(f"no object {key}") from error
            _raise_if_retryable(error)
            raise
        return response["Body"].read().decode("utf-8")

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET link valid for seconds."""
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=seconds)
