"""Only here to ship the dashboard: ``static/`` (at the top of the repository, where the
project keeps it) goes into the wheel as ``toombos_edge/static``. Everything else about the
package is in pyproject.toml. An editable install reads ``static/`` in place instead
(``toombos_edge.dashboard.static_dir``)."""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithDashboard(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        source = Path(__file__).parent / "static"
        target = Path(self.build_lib) / "toombos_edge" / "static"
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)


setup(cmdclass={"build_py": BuildWithDashboard})
