"""Send the MTurk requester calls of tools that hard-code Amazon Mechanical Turk's hosts to a
crowd deployment instead, in the tool's own Python environment.

Installed, its .pth file runs `install()` at interpreter start only when one of these is set
(otherwise nothing is imported and nothing changes):

- CROWD_MTURK_ENDPOINT: the deployment's MTurk endpoint, `<api>/mturk`, for live clients;
- CROWD_MTURK_SANDBOX_ENDPOINT: the endpoint for sandbox clients (a sandbox stage). Without
  it, sandbox clients are left on MTurk's sandbox host, so a tool in sandbox mode never
  spends real money by accident;
- CROWD_MTURK_SUBMIT_URL: where a worker's finished assignment is posted (Dallinger's
  external submission URL); default `<endpoint>/externalSubmit`;
- CROWD_MTURK_ACCESS_KEY_ID and CROWD_MTURK_SECRET_ACCESS_KEY: the deployment's requester
  key, signing every redirected call in place of the tool's own keys (Dallinger signs its SNS
  and its MTurk calls with one pair: it keeps real AWS keys for SNS, and this pair for MTurk).

What it changes, each when its module is first imported (or at once if it already is):

- botocore's `Session.create_client`: a `mturk` client whose endpoint_url is None or one of
  MTurk's requester hosts gets the deployment's endpoint (boto3, psiTurk, Dallinger, Mephisto's
  sandbox provider, amti, scripts);
- oTree's `otree.mturk_client.call_api` (hand-signed, hard-coded host): the same call, signed
  with botocore for service `mturk-requester` and sent to the deployment;
- Dallinger's `MTurkRecruiter.external_submission_url` (dallinger.recruiters): the
  deployment's `/mturk/externalSubmit`.

Every value it replaces is logged once, as a warning on the `mturk_redirect` logger.
"""
from __future__ import annotations

import importlib.abc
import json
import os
import re
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Dict, Mapping, Optional, Set, Tuple

LOGGER = "mturk_redirect"
MARK = "__mturk_redirect__"
# MTurk's requester API hosts, live and sandbox, in any region (FIPS and dual-stack too).
MTURK_HOST = re.compile(
    r"^https?://mturk-requester(?P<sandbox>-sandbox)?(?:-fips)?\.[a-z0-9-]+\.(?:api\.aws|"
    r"amazonaws\.com)(?::443)?/?$", re.IGNORECASE)
TARGET_PREFIX = "MTurkRequesterServiceV20170117"

_logged: Set[Tuple[str, str, str]] = set()
_lock = threading.Lock()


class Settings:
    """The redirect's variables: the live and sandbox endpoints and the submission URL."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.live = (environ.get("CROWD_MTURK_ENDPOINT") or "").rstrip("/") or None
        self.sandbox = (environ.get("CROWD_MTURK_SANDBOX_ENDPOINT") or "").rstrip("/") or None
        self.submit_url = environ.get("CROWD_MTURK_SUBMIT_URL") or None
        key, secret = (environ.get("CROWD_MTURK_ACCESS_KEY_ID"),
                       environ.get("CROWD_MTURK_SECRET_ACCESS_KEY"))
        self.key: Optional[Tuple[str, str]] = (key, secret) if key and secret else None

    def __bool__(self) -> bool:
        return bool(self.live or self.sandbox or self.submit_url)

    def endpoint(self, sandbox: bool) -> Optional[str]:
        """The deployment's endpoint for a live or a sandbox client (None: leave it)."""
        return self.sandbox if sandbox else self.live

    def external_submit(self, sandbox: bool) -> Optional[str]:
        """Where a worker's assignment is posted, for a live or a sandbox tool."""
        if self.submit_url and not sandbox:
            return self.submit_url
        endpoint = self.endpoint(sandbox)
        return f"{endpoint}/externalSubmit" if endpoint else None


def replaced(what: str, before: Any, after: Any) -> None:
    """Log a replaced value (once per distinct replacement)."""
    key = (what, str(before), str(after))
    with _lock:
        if key in _logged:
            return
        _logged.add(key)
    import logging  # only when something is replaced: the interpreter's start stays as it was

    logging.getLogger(LOGGER).warning("%s: %s replaced by %s", what, before, after)


# What the patched functions follow (install sets it; empty: every call passes through).
_settings = Settings({})


# --------------------------------------------------------------------------- botocore

def redirected_endpoint(settings: Settings, endpoint_url: Optional[str],
                        region_name: Optional[str]) -> Optional[str]:
    """The endpoint a `mturk` client should use: ours for no endpoint or one of MTurk's hosts
    (live or sandbox as the original; botocore's pseudo-region `sandbox` is the sandbox),
    anything else as given."""
    if endpoint_url is None:
        return settings.endpoint(region_name == "sandbox") or None
    match = MTURK_HOST.match(str(endpoint_url))
    if match is None:
        return endpoint_url
    return settings.endpoint(bool(match.group("sandbox"))) or endpoint_url


def patch_botocore(module: ModuleType) -> None:
    """Wrap botocore.session.Session.create_client for service `mturk`."""
    session_class = module.Session
    original = session_class.create_client
    if getattr(original, MARK, False):
        return
    import inspect  # with botocore, which is being imported anyway

    signature = inspect.signature(original)

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        if bound.arguments.get("service_name") == "mturk":
            before = bound.arguments.get("endpoint_url")
            after = redirected_endpoint(_settings, before, bound.arguments.get("region_name"))
            if after != before:
                replaced("botocore mturk client endpoint_url", before or "(default)", after)
                bound.arguments["endpoint_url"] = after
                if _settings.key is not None:
                    replaced("botocore mturk client access key",
                             bound.arguments.get("aws_access_key_id") or "(default)",
                             _settings.key[0])
                    bound.arguments.update(aws_access_key_id=_settings.key[0],
                                           aws_secret_access_key=_settings.key[1],
                                           aws_session_token=None)
        return original(*bound.args, **bound.kwargs)

    setattr(create_client, MARK, True)
    create_client.__doc__ = original.__doc__
    session_class.create_client = create_client


# --------------------------------------------------------------------------- oTree

def patch_otree(module: ModuleType) -> None:
    """Replace otree.mturk_client.call_api with a botocore-signed call to the deployment."""
    original = getattr(module, "call_api", None)
    if original is None or getattr(original, MARK, False):
        return

    def call_api(operation: str, request_parameters: dict, *, use_sandbox: bool) -> dict:
        endpoint = _settings.endpoint(use_sandbox)
        if endpoint is None:
            return original(operation, request_parameters, use_sandbox=use_sandbox)
        host = "mturk-requester-sandbox" if use_sandbox else "mturk-requester"
        replaced("oTree call_api endpoint", f"https://{host}.us-east-1.amazonaws.com", endpoint)
        status, body = signed_call(endpoint, operation, request_parameters,
                                   _otree_credentials(module))
        if status >= 300:
            raise module.MTurkError(body)
        return body

    setattr(call_api, MARK, True)
    call_api.__doc__ = original.__doc__
    module.call_api = call_api


def _otree_credentials(module: ModuleType) -> Tuple[Optional[str], Optional[str]]:
    """The requester key of the variables, else oTree's own keys (otree.settings, imported
    into its client), else the environment's."""
    if _settings.key is not None:
        return _settings.key
    return (getattr(module, "AWS_ACCESS_KEY_ID", None) or os.environ.get("AWS_ACCESS_KEY_ID"),
            getattr(module, "AWS_SECRET_ACCESS_KEY", None)
            or os.environ.get("AWS_SECRET_ACCESS_KEY"))


def signed_call(endpoint: str, operation: str, parameters: dict,
                credentials: Tuple[Optional[str], Optional[str]], timeout: float = 60.0
                ) -> Tuple[int, Any]:
    """POST one operation to endpoint, SigV4-signed by botocore as boto3 signs it; the status
    and the JSON body exactly as the server sent it (timestamps stay epoch numbers, which
    oTree compares with time.time())."""
    # botocore is loaded only when oTree makes its first call through the deployment.
    from urllib.error import HTTPError
    from urllib.request import Request, urlopen

    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    key, secret = credentials
    body = json.dumps(parameters).encode("utf-8")
    request = AWSRequest(method="POST", url=endpoint, data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": f"{TARGET_PREFIX}.{operation}"})
    SigV4Auth(Credentials(key or "", secret or ""), "mturk-requester", "us-east-1").add_auth(request)
    prepared = request.prepare()
    try:
        with urlopen(Request(prepared.url, data=body, headers=dict(prepared.headers),
                             method="POST"), timeout=timeout) as response:
            return response.status, json.loads(response.read().decode("utf-8") or "{}")
    except HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            return error.code, json.loads(text)
        except ValueError:
            return error.code, {"Message": text[:500]}


# --------------------------------------------------------------------------- Dallinger

def patch_dallinger(module: ModuleType) -> None:
    """Override MTurkRecruiter.external_submission_url in dallinger.recruiters."""
    recruiter = getattr(module, "MTurkRecruiter", None)
    original = getattr(recruiter, "external_submission_url", None) if recruiter else None
    if not isinstance(original, property) or getattr(original.fget, MARK, False):
        return

    def external_submission_url(self: Any) -> str:
        before = original.fget(self)  # type: ignore[misc]
        after = _settings.external_submit("workersandbox" in str(before))
        if after is None:
            return before
        replaced("Dallinger MTurkRecruiter.external_submission_url", before, after)
        return after

    setattr(external_submission_url, MARK, True)
    recruiter.external_submission_url = property(external_submission_url,  # type: ignore[union-attr]
                                                 doc=original.__doc__)


# --------------------------------------------------------------------------- the hook

PATCHES: Dict[str, Callable[[ModuleType], None]] = {
    "botocore.session": patch_botocore,
    "otree.mturk_client": patch_otree,
    "dallinger.recruiters": patch_dallinger,
}


class _PatchingLoader(importlib.abc.Loader):
    """A module's own loader, then the patch of that module."""

    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class PatchOnImport(importlib.abc.MetaPathFinder):
    """Finds the patched modules through the other finders and patches each once loaded."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch = PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _PatchingLoader(spec.loader, lambda module: _patch_safely(patch, module))
        return spec


def _patch_safely(patch: Callable[[ModuleType], None], module: ModuleType) -> None:
    """A patch that fails leaves the tool as it was (and says so)."""
    try:
        patch(module)
    except Exception as error:  # noqa: BLE001 (the tool runs unpatched rather than not at all)
        import logging  # as in replaced(): only when there is something to say

        logging.getLogger(LOGGER).warning("%s was not redirected: %s: %s", module.__name__,
                                          type(error).__name__, error)


def install(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Redirect what the variables ask for: patch the modules already imported and hook the
    others' first import; False (nothing done) when no variable is set."""
    global _settings
    settings = Settings(os.environ if environ is None else environ)
    if not settings:
        return False
    _settings = settings
    for name, patch in PATCHES.items():
        module = sys.modules.get(name)
        if module is not None:
            _patch_safely(patch, module)
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, PatchOnImport)]
    sys.meta_path.insert(0, PatchOnImport())
    return True


def uninstall() -> None:
    """Undo install: patched functions pass every call through unchanged, and modules
    imported from now on are not patched."""
    global _settings
    _settings = Settings({})
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, PatchOnImport)]
