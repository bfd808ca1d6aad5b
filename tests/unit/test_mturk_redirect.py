"""The opt-in redirect for tools that hard-code MTurk's hosts (mturk-redirect/): botocore's
mturk clients (real botocore), oTree's hand-signed call_api and Dallinger's external
submission URL (fake modules of the same shape), and the package installed into a throwaway
virtual environment, whose .pth file redirects a boto3 client made with MTurk's live host."""
from __future__ import annotations

import http.server
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest

from chalicelib.adapters import sigv4

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "mturk-redirect"
sys.path.insert(0, str(PACKAGE))
import mturk_redirect  # noqa: E402 (from the package's own directory, as pip installs it)

LIVE = "https://mturk-requester.us-east-1.amazonaws.com"
SANDBOX = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
OURS = "https://api.example.org/dev/mturk"
OURS_SANDBOX = "https://sandbox.example.org/dev/mturk"


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test installs afresh; botocore's Session and the import system are restored."""
    monkeypatch.setattr(botocore.session.Session, "create_client",
                        botocore.session.Session.create_client)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    mturk_redirect._logged.clear()
    yield
    mturk_redirect.uninstall()
    for name in [n for n in sys.modules if n.split(".")[0] in ("otree", "dallinger")]:
        del sys.modules[name]


def _mturk(endpoint_url: str | None = None, region: str = "us-east-1") -> Any:
    return boto3.client("mturk", region_name=region, endpoint_url=endpoint_url,
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")


def test_without_the_variables_nothing_is_installed():
    before = botocore.session.Session.create_client
    assert mturk_redirect.install({}) is False
    assert botocore.session.Session.create_client is before
    assert not any(isinstance(f, mturk_redirect.PatchOnImport) for f in sys.meta_path)
    assert _mturk(LIVE).meta.endpoint_url == LIVE


def test_botocore_mturk_clients_on_mturk_hosts_or_none_go_to_ours(caplog):
    # GIVEN the live and sandbox endpoints set
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": OURS + "/",
                            "CROWD_MTURK_SANDBOX_ENDPOINT": OURS_SANDBOX})
    caplog.set_level(logging.WARNING, logger="mturk_redirect")
    # THEN MTurk's live host, no endpoint, the sandbox host and the `sandbox` pseudo-region
    # are ours, live or sandbox as they were
    assert _mturk(LIVE).meta.endpoint_url == OURS
    assert _mturk(LIVE).meta.endpoint_url == OURS
    assert _mturk(None).meta.endpoint_url == OURS
    assert _mturk(SANDBOX).meta.endpoint_url == OURS_SANDBOX
    assert _mturk(None, region="sandbox").meta.endpoint_url == OURS_SANDBOX
    assert _mturk("https://mturk-requester.eu-west-1.amazonaws.com/").meta.endpoint_url == OURS
    # AND another endpoint, and other services, are left as given
    assert _mturk("http://127.0.0.1:8000/mturk").meta.endpoint_url == "http://127.0.0.1:8000/mturk"
    sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=LIVE)
    assert sqs.meta.endpoint_url == LIVE
    # AND each replaced value was logged once (five distinct replacements)
    messages = [r.getMessage() for r in caplog.records if r.name == "mturk_redirect"]
    assert f"botocore mturk client endpoint_url: {LIVE} replaced by {OURS}" in messages
    assert f"botocore mturk client endpoint_url: {SANDBOX} replaced by {OURS_SANDBOX}" in messages
    assert len(messages) == len(set(messages)) == 5


def test_a_sandbox_client_stays_on_mturk_without_a_sandbox_endpoint():
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": OURS})
    assert _mturk(SANDBOX).meta.endpoint_url == SANDBOX
    assert _mturk(LIVE).meta.endpoint_url == OURS


def test_an_endpoint_url_passed_by_position_is_replaced_too():
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": OURS})
    client = botocore.session.Session().create_client(
        "mturk", "us-east-1", None, True, None, LIVE, "AKIDEXAMPLE", "secret")
    assert client.meta.endpoint_url == OURS


def _fake_package(root: Path, name: str, modules: dict[str, str]) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    for module, source in modules.items():
        (root / name / f"{module}.py").write_text(textwrap.dedent(source))


OTREE_CLIENT = '''
    AWS_ACCESS_KEY_ID = "AKOTREE"
    AWS_SECRET_ACCESS_KEY = "otree-secret"

    def call_api(operation, request_parameters, *, use_sandbox):
        raise AssertionError("the hard-coded MTurk host was called")

    class MTurkError(Exception):
        pass

    class TurkClient:
        @staticmethod
        def create_hit(request_params, *, use_sandbox):
            return call_api("CreateHIT", request_params, use_sandbox=use_sandbox)
'''


class _Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in deployment: verifies the SigV4 signature as the app does and answers."""

    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = sigv4.SignedRequest("POST", self.path, [],
                                      {k.lower(): v for k, v in self.headers.items()}, body)
        credential = sigv4.credential_of(request, "mturk-requester")
        sigv4.verify(request, credential, "otree-secret", time.time())
        target = self.headers["X-Amz-Target"]
        self.seen.append({"path": self.path, "target": target, "key": credential.access_key_id,
                          "body": json.loads(body)})
        if target.endswith(".CreateHIT"):
            status, answer = 200, {"HIT": {"HITId": "3ABC", "Expiration": 1795000000.5}}
        else:
            status, answer = 400, {"__type": "RequestError", "Message": "no",
                                   "TurkErrorCode": "AWS.MechanicalTurk.HITDoesNotExist"}
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def deployment() -> Iterator[str]:
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/dev/mturk"
    server.shutdown()
    server.server_close()


def test_otree_call_api_imported_later_is_signed_and_sent_to_ours(tmp_path, monkeypatch,
                                                                   deployment, caplog):
    # GIVEN the redirect installed before oTree is imported
    _fake_package(tmp_path, "otree", {"mturk_client": OTREE_CLIENT})
    monkeypatch.syspath_prepend(str(tmp_path))
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": deployment})
    caplog.set_level(logging.WARNING, logger="mturk_redirect")
    # WHEN oTree creates a HIT through its TurkClient
    from otree import mturk_client

    hit = mturk_client.TurkClient.create_hit({"Title": "t"}, use_sandbox=False)
    # THEN the deployment got the call, signed with oTree's keys, at its path; the answer is
    # the JSON as sent (numbers stay numbers)
    assert hit == {"HIT": {"HITId": "3ABC", "Expiration": 1795000000.5}}
    assert _Recorder.seen == [{"path": "/dev/mturk",
                               "target": "MTurkRequesterServiceV20170117.CreateHIT",
                               "key": "AKOTREE", "body": {"Title": "t"}}]
    assert any("oTree call_api endpoint" in r.getMessage() for r in caplog.records)
    # AND an error answer is oTree's own MTurkError with the body
    with pytest.raises(mturk_client.MTurkError) as caught:
        mturk_client.call_api("GetHIT", {"HITId": "X"}, use_sandbox=False)
    assert caught.value.args[0]["TurkErrorCode"] == "AWS.MechanicalTurk.HITDoesNotExist"


def test_otree_already_imported_is_patched_at_install_and_its_sandbox_left_alone(deployment):
    module = types.ModuleType("otree.mturk_client")
    exec(textwrap.dedent(OTREE_CLIENT), module.__dict__)
    sys.modules["otree"] = types.ModuleType("otree")
    sys.modules["otree.mturk_client"] = module
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": deployment})
    assert module.TurkClient.create_hit({}, use_sandbox=False)["HIT"]["HITId"] == "3ABC"
    with pytest.raises(AssertionError, match="hard-coded MTurk host"):
        module.call_api("CreateHIT", {}, use_sandbox=True)


def test_the_requester_key_variables_sign_redirected_calls_in_place_of_the_tools_keys(
        deployment):
    # GIVEN the redirect with the deployment's requester key (the tool keeps other keys)
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": deployment,
                            "CROWD_MTURK_ACCESS_KEY_ID": "AKCROWD",
                            "CROWD_MTURK_SECRET_ACCESS_KEY": "otree-secret"})
    module = types.ModuleType("otree.mturk_client")
    exec(textwrap.dedent(OTREE_CLIENT), module.__dict__)
    mturk_redirect.patch_otree(module)
    # WHEN a boto3 client made with real AWS keys, and oTree with its own, call MTurk
    client = boto3.client("mturk", region_name="us-east-1", endpoint_url=LIVE,
                          aws_access_key_id="AKIAREALAWSKEY", aws_secret_access_key="aws",
                          aws_session_token="token")
    with pytest.raises(client.exceptions.RequestError):
        client.get_hit(HITId="X")
    module.TurkClient.create_hit({}, use_sandbox=False)
    # THEN both were signed with the requester key (the stand-in verified the signatures)
    assert [seen["key"] for seen in _Recorder.seen] == ["AKCROWD", "AKCROWD"]


DALLINGER_RECRUITERS = '''
    class MTurkRecruiter:
        def __init__(self, is_sandbox):
            self.is_sandbox = is_sandbox

        @property
        def external_submission_url(self):
            """Where participants submit."""
            if self.is_sandbox:
                return "https://workersandbox.mturk.com/mturk/externalSubmit"
            return "https://www.mturk.com/mturk/externalSubmit"
'''


def test_dallinger_external_submission_url_is_ours(tmp_path, monkeypatch, caplog):
    _fake_package(tmp_path, "dallinger", {"recruiters": DALLINGER_RECRUITERS})
    monkeypatch.syspath_prepend(str(tmp_path))
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": OURS,
                            "CROWD_MTURK_SANDBOX_ENDPOINT": OURS_SANDBOX})
    caplog.set_level(logging.WARNING, logger="mturk_redirect")
    from dallinger.recruiters import MTurkRecruiter

    assert MTurkRecruiter(False).external_submission_url == OURS + "/externalSubmit"
    assert MTurkRecruiter(True).external_submission_url == OURS_SANDBOX + "/externalSubmit"
    assert MTurkRecruiter.external_submission_url.__doc__ == "Where participants submit."
    assert any("https://www.mturk.com/mturk/externalSubmit replaced by" in r.getMessage()
               for r in caplog.records)


def test_dallinger_submit_url_variable_wins_and_sandbox_stays_without_its_endpoint():
    module = types.ModuleType("dallinger.recruiters")
    exec(textwrap.dedent(DALLINGER_RECRUITERS), module.__dict__)
    sys.modules["dallinger"] = types.ModuleType("dallinger")
    sys.modules["dallinger.recruiters"] = module
    mturk_redirect.install({"CROWD_MTURK_ENDPOINT": OURS,
                            "CROWD_MTURK_SUBMIT_URL": "https://api.example.org/dev/mturk/externalSubmit"})
    assert module.MTurkRecruiter(False).external_submission_url == \
        "https://api.example.org/dev/mturk/externalSubmit"
    assert module.MTurkRecruiter(True).external_submission_url == \
        "https://workersandbox.mturk.com/mturk/externalSubmit"


def _run(python: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CROWD_MTURK_")}
    return subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                          timeout=120, cwd="/", env={**clean, **env})


def test_installed_with_pip_into_a_venv_its_pth_redirects_boto3(tmp_path):
    # GIVEN a throwaway venv that sees this environment's packages (boto3, and setuptools
    # and wheel for the build) and the package installed into it with pip, offline
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig."
                                "get_paths()['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "zz_outer_environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    source = tmp_path / "source"
    shutil.copytree(PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    installed = subprocess.run([str(python), "-m", "pip", "install", "--no-deps",
                                "--no-build-isolation", "--no-index", str(source)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert (site / "crowd_mturk_redirect.pth").exists()
    loaded = "import sys; print('mturk_redirect' in sys.modules, 'botocore' in sys.modules)"
    make = ("import boto3; print(boto3.client('mturk', region_name='us-east-1', endpoint_url="
            f"'{LIVE}', aws_access_key_id='a', aws_secret_access_key='b').meta.endpoint_url)")
    # WHEN Python starts without the variables, and with them
    plain, plain_client = _run(python, loaded), _run(python, make)
    redirected, client = _run(python, loaded, CROWD_MTURK_ENDPOINT=OURS), \
        _run(python, make, CROWD_MTURK_ENDPOINT=OURS)
    # THEN without them nothing is imported and the client keeps MTurk's host; with them the
    # package is loaded (botocore not, until the tool imports it) and the client is ours
    assert plain.stdout.split() == ["False", "False"], plain.stderr
    assert plain_client.stdout.strip() == LIVE, plain_client.stderr
    assert redirected.stdout.split() == ["True", "False"], redirected.stderr
    assert client.stdout.strip() == OURS, client.stderr
    assert f"{LIVE} replaced by {OURS}" in client.stderr
