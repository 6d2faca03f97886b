"""imgtool as a user installs it: the wheel, in a fresh venv outside the checkout, run where no checkout is.

The distributions are built the way the release workflow builds them (`python -m build`: the sdist, then
the wheel from the sdist) and pass `twine check --strict`. The wheel goes into a new venv under a
temporary directory; every command runs from a copy of a sample project elsewhere, with a clean
environment (no PYTHONPATH, no virtualenv of the checkout on PATH), and nothing it prints or imports
may point into the checkout. Then the sample project is rendered, built and smoke-tested with the
installed command; the image is tagged for this run and removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import docker.errors
import pytest

from tests.conftest import ROOT, RUN_ID
from toolkit import DISTRIBUTION, __version__
from toolkit.containers import TEST_LABEL
from toolkit.servers import SERVERS

SAMPLE = ROOT / "tests" / "projects" / "starlette-requirements"
TAG = f"imgtool-test-wheel:{RUN_ID}"
# What a clean shell would not have: these would let the checkout in through the back door.
LEAKY = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], ROOT, dict(os.environ))
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    found = {path.suffix: path for path in out.iterdir()}
    assert set(found) == {".whl", ".gz"}, sorted(out.iterdir())
    twine = [sys.executable, "-m", "twine", "check", "--strict", *map(str, found.values())]
    checked = _run(twine, out, dict(os.environ))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    return {"wheel": found[".whl"], "sdist": found[".gz"]}


@pytest.fixture(scope="module")
def user(dists, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the wheel installed, a copy of the sample project, and a clean environment."""
    root = tmp_path_factory.mktemp("user")
    assert not root.is_relative_to(ROOT)
    venv = root / "venv"
    # The base interpreter, not the checkout's .venv (whose site-packages holds the editable install).
    base_python = getattr(sys, "_base_executable", sys.executable)
    made = _run([base_python, "-m", "venv", str(venv)], root, {"PATH": os.defpath})
    assert made.returncode == 0, made.stderr
    env = {key: value for key, value in os.environ.items() if key not in LEAKY}
    outside = [p for p in env.get("PATH", os.defpath).split(os.pathsep) if p and not Path(p).is_relative_to(ROOT)]
    env.update(PATH=os.pathsep.join([str(venv / "bin"), *outside]), COLUMNS="200", IMGTOOL_RUN_ID=RUN_ID)
    installed = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(dists["wheel"])], root, env)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    project = shutil.copytree(SAMPLE, root / "project", ignore=shutil.ignore_patterns("__pycache__"))
    return project, env


def imgtool(user, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    project, env = user
    result = _run(["imgtool", *args], project, env, timeout)
    assert str(ROOT) not in result.stdout + result.stderr, f"the checkout leaked into imgtool {args[0]}"
    return result


def test_the_wheel_carries_the_package_and_its_templates(dists):
    with zipfile.ZipFile(dists["wheel"]) as wheel:
        names = set(wheel.namelist())
        metadata = wheel.read(f"imgtool_asgi-{__version__}.dist-info/METADATA").decode()
        entry_points = wheel.read(f"imgtool_asgi-{__version__}.dist-info/entry_points.txt").decode()
    shipped = {name.removeprefix("toolkit/images/") for name in names if name.startswith("toolkit/images/")}
    tracked = _run(["git", "ls-files", "-z", "images"], ROOT, dict(os.environ)).stdout.split("\0")
    assert shipped == {name.removeprefix("images/") for name in tracked if name}
    assert f"Name: {DISTRIBUTION}\n" in metadata and f"Version: {__version__}\n" in metadata
    assert "imgtool = toolkit.cli:main" in entry_points
    assert not any(name.startswith(("tests/", "images/", "benchmarks/")) for name in names)
    # Beside the templates, the package is its Python modules: no stray file a merge left behind.
    code = {name for name in names if name.startswith("toolkit/") and not name.startswith("toolkit/images/")}
    assert {name for name in code if not name.endswith(".py")} == set()


def test_installed_outside_the_checkout_and_nothing_leaks_in(user):
    project, env = user
    assert not any(key in env for key in LEAKY)
    probe = (
        "import json, sys, importlib.metadata as m, toolkit\n"
        f"dist = m.distribution({DISTRIBUTION!r})\n"
        "print(json.dumps({'file': toolkit.__file__, 'images': str(toolkit.IMAGES_DIR), 'path': sys.path,\n"
        "    'files': [str(dist.locate_file(f).resolve()) for f in dist.files]}))\n"
    )
    result = _run(["python", "-c", probe], project, env)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    venv = Path(env["PATH"].split(os.pathsep)[0]).parent
    for path in [seen["file"], seen["images"], *seen["files"]]:
        assert Path(path).is_relative_to(venv.resolve()), path
    assert not any(entry and Path(entry).resolve().is_relative_to(ROOT) for entry in seen["path"]), seen["path"]
    assert Path(seen["images"]).is_dir() and not Path(seen["images"]).is_symlink()


def test_version_and_servers(user):
    version = imgtool(user, "--version")
    assert version.returncode == 0 and version.stdout == f"imgtool {__version__} ({DISTRIBUTION})\n"
    listed = imgtool(user, "servers", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [entry["name"] for entry in json.loads(listed.stdout)] == list(SERVERS)


@pytest.fixture
def wheel_image(docker_client):
    """The tag this test builds, and imgtool's assets image when this test was the one to make it."""
    before = {tag for image in docker_client.images.list(name="imgtool-assets") for tag in image.tags}
    yield TAG
    after = {tag for image in docker_client.images.list(name="imgtool-assets") for tag in image.tags}
    for tag in [TAG, *(after - before)]:
        with contextlib.suppress(docker.errors.NotFound):
            docker_client.images.remove(tag, force=True)


def test_render_build_and_smoke_test_the_sample_project(docker_client, user, wheel_image):
    project, _ = user
    bundled = imgtool(user, "render", "--demo", "--server", "granian")
    assert bundled.returncode == 0, bundled.stderr
    assert "app:app on granian" in bundled.stdout  # the bundled app, read from the installed package

    # The project in the current directory, with no flag; then the same with --context.
    here = imgtool(user, "render", "--server", "granian")
    assert here.returncode == 0 and "main:app on granian" in here.stdout, here.stderr
    rendered = imgtool(user, "render", "--server", "granian", "--context", ".", "--output", "Dockerfile")
    assert rendered.returncode == 0, rendered.stderr
    assert "main:app on granian" in (project / "Dockerfile").read_text()
    (project / "Dockerfile").unlink()

    built = imgtool(user, "build", "--server", "granian", "--context", ".", "--tag", wheel_image, "--json")
    assert built.returncode == 0, built.stderr[-3000:]
    assert [entry["tag"] for entry in json.loads(built.stdout)] == [wheel_image]
    labels = docker_client.images.get(wheel_image).labels
    assert labels["imgtool.server"] == "granian" and labels["imgtool.version"] == __version__

    tested = imgtool(user, "test", "--image", wheel_image, "--junit", "junit.xml", "--json")
    assert tested.returncode == 0, tested.stdout[-3000:] + tested.stderr[-2000:]
    assert (project / "junit.xml").is_file()
    assert not docker_client.containers.list(all=True, filters={"label": f"{TEST_LABEL}={RUN_ID}"})
