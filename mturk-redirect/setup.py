"""Builds the package with its .pth file at the top of site-packages, where Python's site
module reads it at every start (setuptools has no declarative way to place it there)."""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "crowd_mturk_redirect.pth"


class BuildWithPth(build_py):
    """build_py, plus the .pth file at the root of the built tree."""

    def run(self) -> None:
        super().run()
        self.copy_file(str(Path(__file__).with_name(PTH)), str(Path(self.build_lib) / PTH))


setup(cmdclass={"build_py": BuildWithPth})
