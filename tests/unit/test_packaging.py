"""What the distribution is: its name on the index, one version, pinned dependency ranges, the `imgtool`
command, and images/ as package data found one way (the wheel itself is tested in tests/integration)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement

from tests.conftest import ROOT, run_cli
from toolkit import DISTRIBUTION, IMAGES_DIR, __version__

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_distribution_name_is_ours_and_the_command_stays_imgtool():
    project = PYPROJECT["project"]
    assert project["name"] == DISTRIBUTION == "imgtool-asgi"
    assert project["scripts"] == {"imgtool": "toolkit.cli:main"}


def test_one_version_read_from_the_package():
    assert "version" not in PYPROJECT["project"] and PYPROJECT["project"]["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "toolkit/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)


def test_every_dependency_range_has_both_bounds():
    project = PYPROJECT["project"]
    extras = [text for extra in project["optional-dependencies"].values() for text in extra]
    requirements = [*project["dependencies"], *extras, *PYPROJECT["build-system"]["requires"]]
    for text in requirements:
        operators = {spec.operator for spec in Requirement(text).specifier}
        assert operators & {">=", "~=", "=="} and operators & {"<", "~=", "=="}, f"unbounded: {text}"


def test_images_is_package_data_read_through_the_symlink_in_a_checkout():
    link = ROOT / "toolkit" / "images"
    assert link.is_symlink() and link.readlink().as_posix() == "../images"
    assert (ROOT / "images").resolve() == IMAGES_DIR
    assert (IMAGES_DIR / "Dockerfile.j2").is_file()


def test_version_option():
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"imgtool {__version__} ({DISTRIBUTION})\n"


def test_an_install_without_the_templates_fails_at_import(tmp_path):
    """No fallback to some other images/ directory: a package without toolkit/images is broken, loudly."""
    package = tmp_path / "toolkit"
    package.mkdir()
    shutil.copy2(ROOT / "toolkit" / "__init__.py", package / "__init__.py")
    probe = f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import toolkit; print(toolkit.__file__)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"ImportError: imgtool's templates are missing ({package / 'images'} is not a directory)" in result.stderr
