"""AWS Signature Version 4 checked in the app, with botocore's own signer: the signature a
client computed with its secret is recomputed over the request as received and compared in
constant time. API Gateway's IAM authoriser cannot do this: it accepts only the
`execute-api` scope, and only IAM knows an IAM user's secret."""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from chalicelib.domain.mturk import MTurkError

ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW_SECONDS = 15 * 60
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=([^,\s]+)\s*,\s*SignedHeaders=([^,\s]+)\s*,"
    r"\s*Signature=([0-9a-f]{64})\s*$")
_AMZ_DATE = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class SignedRequest:
    """What the verifier needs of a request, as the client sent it: `path` is the path the
    client signed (behind API Gateway, the stage prefix included), `headers` are keyed by
    their lower-case names."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Credential:
    """The parts of a request's credential scope."""

    access_key_id: str
    date: str
    region: str
    service: str


def credential_of(request: SignedRequest, service: str) -> Credential:
    """The credential a request names (not yet verified); MTurk's errors when it names none."""
    header = _header(request.headers, "authorization")
    if not header:
        raise MTurkError("MissingAuthenticationTokenException",
                         "Request is missing Authentication Token", 400)
    match = _AUTHORIZATION.match(header)
    if match is None:
        raise MTurkError("IncompleteSignatureException",
                         f"Authorization header requires '{ALGORITHM} Credential=..., "
                         "SignedHeaders=..., Signature=...'", 400)
    parts = match.group(1).split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise MTurkError("IncompleteSignatureException",
                         "Credential must be <key id>/<date>/<region>/<service>/aws4_request",
                         400)
    if parts[3] != service:
        raise MTurkError("InvalidSignatureException",
                         f"Credential should be scoped to correct service: '{service}'.", 400)
    return Credential(parts[0], parts[1], parts[2], parts[3])


def verify(request: SignedRequest, credential: Credential, secret: str, now: float) -> None:
    """Accept the request if its signature is the one secret makes, its date is within 15
    minutes of now and every header SignedHeaders lists is signed; else MTurk's error."""
    # botocore loaded at the first signed request, not with the app (the API's cold start).
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    match = _AUTHORIZATION.match(_header(request.headers, "authorization") or "")
    assert match is not None  # credential_of checked it
    signed_names = match.group(2).split(";")
    amz_date = _header(request.headers, "x-amz-date") or ""
    stamp = _parse_date(amz_date)
    if stamp is None:
        raise MTurkError("IncompleteSignatureException",
                         "X-Amz-Date must be a date in the form 20261206T120000Z", 400)
    if abs(stamp - now) > MAX_SKEW_SECONDS:
        server = datetime.fromtimestamp(now, timezone.utc).strftime(_AMZ_DATE)
        raise MTurkError("InvalidSignatureException",
                         f"Signature expired: {amz_date} is now earlier than the allowed "
                         f"15 min. from {server}" if stamp < now else
                         f"Signature not yet current: {amz_date} is still later than the "
                         f"allowed 15 min. from {server}", 400)
    if credential.date != amz_date[:8]:
        raise MTurkError("InvalidSignatureException",
                         "Credential should be scoped to a valid date: "
                         f"'{amz_date[:8]}'.", 400)
    if "host" not in signed_names or any(_header(request.headers, name) is None
                                         for name in signed_names):
        raise MTurkError("IncompleteSignatureException",
                         "SignedHeaders must include host and name only headers the "
                         "request has", 400)
    declared = _header(request.headers, "x-amz-content-sha256")
    if declared is not None and declared != hashlib.sha256(request.body).hexdigest():
        raise MTurkError("InvalidSignatureException",
                         "X-Amz-Content-SHA256 does not match the body", 400)

    class Listed(SigV4Auth):
        """botocore's signer over exactly the headers the client listed."""

        def headers_to_sign(self, _request: AWSRequest) -> object:
            from botocore.compat import HTTPHeaders  # botocore, late: as the signer above
            header_map = HTTPHeaders()
            for name in signed_names:
                header_map[name] = _header(request.headers, name)
            return header_map

    query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                     for k, v in request.query)
    url = f"https://{_header(request.headers, 'host')}{request.path}" + (f"?{query}" if query else "")
    rebuilt = AWSRequest(method=request.method, url=url, data=request.body)
    rebuilt.context["timestamp"] = amz_date
    signer = Listed(Credentials(credential.access_key_id, secret), credential.service,
                    credential.region)
    canonical = signer.canonical_request(rebuilt)
    expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
    if not hmac.compare_digest(expected, match.group(3)):
        raise MTurkError("InvalidSignatureException",
                         "The request signature we calculated does not match the signature "
                         "you provided. Check your AWS Secret Access Key and signing method.",
                         400)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by its lower-case name (SignedRequest's headers are keyed in lower case)."""
    return headers.get(name)


def _parse_date(text: str) -> float | None:
    try:
        return datetime.strptime(text, _AMZ_DATE).replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return None

