"""S3 objects in the results bucket."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.adapters.aws_errors import error_code, raise_if_busy
from chalicelib.errors import Conflict, NotFound
from chalicelib.observability import logger

# Multipart part size for streamed objects (S3's minimum part is 5 MiB).
PART_BYTES = 8 * 1024 * 1024
# Parts a ListParts page names (S3's most): S3's 10,000 parts are ten pages.
LIST_PARTS_PAGE = 1000


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
            raise_if_busy(error, "S3")
            raise

    def put_stream(self, key: str, chunks: Iterable[str], content_type: str) -> None:
        """Write an object from text chunks, holding at most about PART_BYTES in memory.

        Up to PART_BYTES in all it is one PutObject; beyond, a multipart upload of
        PART_BYTES parts (S3 needs parts of at least 5 MiB but the last), aborted if
        anything fails so no orphan parts are left to pay for.
        """
        buffer: list[bytes] = []
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            for chunk in chunks:
                data = chunk.encode("utf-8")
                buffer.append(data)
                size += len(data)
                if size >= PART_BYTES:
                    if upload_id is None:
                        upload_id = self._s3.create_multipart_upload(
                            Bucket=self._bucket, Key=key, ContentType=content_type)["UploadId"]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, b"".join(buffer)))
                    buffer, size = [], 0
            if upload_id is None:
                self._s3.put_object(Bucket=self._bucket, Key=key, Body=b"".join(buffer),
                                    ContentType=content_type)
                return
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, b"".join(buffer)))
            self._s3.complete_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id,
                                               MultipartUpload={"Parts": parts})
        except BaseException as error:
            if upload_id is not None:
                try:
                    self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
                except ClientError:
                    # The bucket's lifecycle rule removes the parts within a day; the error
                    # that stopped the upload is the one to report.
                    logger.warning("could not abort a multipart upload", extra={"key": key})
            if isinstance(error, ClientError):
                raise_if_busy(error, "S3")
            raise

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        response = self._s3.upload_part(Bucket=self._bucket, Key=key, UploadId=upload_id,
                                        PartNumber=number, Body=body)
        return {"PartNumber": number, "ETag": response["ETag"]}

    def get_text(self, key: str) -> str:
        """Read an object; NotFound if it is missing."""
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404"}:
                raise NotFound(f"no object {key}") from error
            raise_if_busy(error, "S3")
            raise
        return response["Body"].read().decode("utf-8")

    def exists(self, key: str) -> bool:
        """Whether an object is there (HeadObject, authorised as s3:GetObject)."""
        try:
            self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404", "NotFound"}:
                return False
            raise_if_busy(error, "S3")
            raise
        return True

    def head(self, key: str) -> tuple[int, str] | None:
        """An object's size in bytes and its ETag (HeadObject); None if there is none."""
        try:
            response = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise_if_busy(error, "S3")
            raise
        return int(response["ContentLength"]), str(response["ETag"])

    def get_range(self, key: str, start: int, end: int, etag: str | None = None) -> bytes:
        """An object's bytes [start, end) (GetObject with a Range), of the version with that
        ETag if given: NotFound if it is missing, Conflict (upload_changed) if it was
        replaced since."""
        extra = {} if etag is None else {"IfMatch": etag}
        try:
            response = self._s3.get_object(Bucket=self._bucket, Key=key,
                                           Range=f"bytes={start}-{end - 1}", **extra)
        except ClientError as error:
            if error_code(error) in {"NoSuchKey", "404"}:
                raise NotFound(f"no object {key}") from error
            if error_code(error) in {"PreconditionFailed", "412"}:
                raise Conflict(f"the object {key} was replaced", code="upload_changed") from error
            raise_if_busy(error, "S3")
            raise
        return response["Body"].read()

    def upload_url(self, key: str, seconds: int, content_type: str) -> str:
        """A presigned PUT link valid for seconds, for a body of that content type."""
        return self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self._bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=seconds)

    def start_multipart(self, key: str, content_type: str) -> str:
        """Start a multipart upload of the object (CreateMultipartUpload); its upload id."""
        try:
            return str(self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=key, ContentType=content_type)["UploadId"])
        except ClientError as error:
            raise_if_busy(error, "S3")
            raise

    def part_url(self, key: str, upload: str, number: int, seconds: int) -> str:
        """A presigned UploadPart link for part `number`, valid for seconds."""
        return self._s3.generate_presigned_url(
            "upload_part", Params={"Bucket": self._bucket, "Key": key, "UploadId": upload,
                                   "PartNumber": number}, ExpiresIn=seconds)

    def list_parts(self, key: str, upload: str) -> list[tuple[int, str, int]]:
        """The parts a multipart upload holds (ListParts, LIST_PARTS_PAGE a page: at most ten
        pages for S3's 10,000 parts); NotFound if the upload is gone."""
        parts: list[tuple[int, str, int]] = []
        extra: dict[str, Any] = {"MaxParts": LIST_PARTS_PAGE}
        while True:
            try:
                response = self._s3.list_parts(Bucket=self._bucket, Key=key, UploadId=upload,
                                               **extra)
            except ClientError as error:
                if error_code(error) in {"NoSuchUpload", "404"}:
                    raise NotFound(f"no multipart upload of {key}") from error
                raise_if_busy(error, "S3")
                raise
            parts.extend((int(part["PartNumber"]), str(part["ETag"]), int(part["Size"]))
                         for part in response.get("Parts", []))
            if not response.get("IsTruncated"):
                return parts
            extra = {"MaxParts": LIST_PARTS_PAGE,
                     "PartNumberMarker": response["NextPartNumberMarker"]}

    def complete_multipart(self, key: str, upload: str, parts: list[tuple[int, str]]) -> None:
        """Join the parts into the object (CompleteMultipartUpload)."""
        try:
            self._s3.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload,
                MultipartUpload={"Parts": [{"PartNumber": number, "ETag": etag}
                                           for number, etag in parts]})
        except ClientError as error:
            code = error_code(error)
            if code in {"NoSuchUpload", "404"}:
                raise NotFound(f"no multipart upload of {key}") from error
            if code in {"InvalidPart", "InvalidPartOrder", "EntityTooSmall"}:
                raise Conflict(f"S3 refused the parts: {code}", code="part_mismatch",
                               field="parts") from error
            raise_if_busy(error, "S3")
            raise

    def abort_multipart(self, key: str, upload: str) -> None:
        """Drop a multipart upload and its parts (AbortMultipartUpload); gone already: done."""
        try:
            self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload)
        except ClientError as error:
            if error_code(error) in {"NoSuchUpload", "404"}:
                return
            raise_if_busy(error, "S3")
            raise

    def download_url(self, key: str, seconds: int) -> str:
        """A presigned GET link valid for seconds."""
        return self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=seconds)
