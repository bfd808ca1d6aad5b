"""Cold start: the API's import chain leaves numpy out (it loads only where a model is fitted).

Each check runs a fresh interpreter with the fake environment bench/import_time.py uses, so
what earlier tests imported cannot hide or fake an import.
"""
import os
import subprocess
import sys
from pathlib import Path

from bench.import_time import FAKE_ENV

ROOT = Path(__file__).resolve().parents[2]


def loaded_after(code: str) -> set[str]:
    """The top-level packages in sys.modules after a fresh interpreter runs ``code``."""
    probe = code + "\nimport sys\nprint('\\n'.join(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env={**os.environ, **FAKE_ENV},
                         check=True, capture_output=True, text=True).stdout
    return set(out.split())


def test_importing_the_app_does_not_import_numpy():
    loaded = loaded_after("import app")
    assert "chalicelib" in loaded
    assert "numpy" not in loaded


def test_wiring_the_platform_does_not_import_numpy():
    loaded = loaded_after("import app\nfrom chalicelib import deps\ndeps.platform()")
    assert "pynamodb" in loaded  # the wiring ran
    assert "numpy" not in loaded


def test_the_online_model_still_brings_numpy():
    assert "numpy" in loaded_after("import chalicelib.domain.adaptive")
