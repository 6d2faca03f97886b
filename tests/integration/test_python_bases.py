"""The newer Pythons: the bundled app builds on each offline base Debian's suites give here (3.13 trixie, 3.14
and 3.15 forky; 3.11 bookworm is what every other test builds on) and passes `imgtool test`; the distroless
runtime is assembled from that suite's own packages (the t64 renames included). A project's own pin picks the
Python; a pin no base has is one line naming those there are.

The offline base is used where `scripts/setup` made it (no registry answers); where a registry answers, the
published python:X.Y-slim of the same version is. One server (granian): the point is per Python, not per server.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import RUN_ID, TAG_PREFIX, run_cli
from tests.integration.conftest import copy_reference_app, leftover_test_containers, running, wait_for_health
from toolkit import engine
from toolkit.base import official_base, pull
from toolkit.pythons import OFFLINE_PYTHONS, OfflinePython

NEW = [offline for offline in OFFLINE_PYTHONS if offline.python != "3.11"]
PROJECTS = Path(__file__).resolve().parent.parent / "projects"


@pytest.fixture(scope="module")
def tags(docker_client):
    made: set[str] = set()
    yield made
    for tag in made:
        if engine.image_exists(docker_client, tag):
            docker_client.images.remove(tag, force=True)


def base_for(docker_client, offline: OfflinePython) -> tuple[str, bool]:
    """(the base to build on, whether it is the offline one)."""
    if engine.image_exists(docker_client, offline.image):
        return offline.image, True
    official = official_base(offline.python)
    if engine.image_exists(docker_client, official) or pull(docker_client, official) is None:
        return official, False
    pytest.fail(
        f"no Python {offline.python} base: neither {offline.image} nor {official}: run scripts/setup "
        f"(or `imgtool base bootstrap --python {offline.python}`)"
    )


def run_once(docker_client, tag: str, *argv: str) -> str:
    output = docker_client.containers.run(tag, list(argv), entrypoint=[], remove=True, labels={"imgtool.test": RUN_ID})
    return output.decode().strip()


def runtime_packages(docker_client, tag: str) -> set[str]:
    """The Debian packages the distroless runtime was assembled from (its /var/lib/dpkg/status.d records)."""
    container = docker_client.containers.create(tag, labels={"imgtool.test": RUN_ID})
    try:
        stream, _ = container.get_archive("/var/lib/dpkg/status.d")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            names = {member.name.rsplit("/", 1)[-1] for member in archive.getmembers() if member.isfile()}
    finally:
        container.remove(force=True)
    return {name for name in names if not name.endswith(".md5sums")}


@pytest.mark.parametrize("offline", NEW, ids=[f"py{o.python}-{o.suite}" for o in NEW])
def test_the_bundled_app_builds_and_passes_the_smoke_suite_on_each_newer_python(docker_client, tags, offline):
    base, bootstrapped = base_for(docker_client, offline)
    tag = f"{TAG_PREFIX}imgtool-test-py{offline.python}:granian"
    tags.add(tag)
    build = run_cli("build", "--demo", "--server", "granian", "--base", base, "--tag", tag, "--json", timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    (result,) = json.loads(build.stdout)
    print(f"py{offline.python} on {base}: {result['size_bytes'] / 1e6:.0f} MB, built in {result['seconds']:.1f} s")
    assert run_once(docker_client, tag, "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])") == (
        offline.python
    )

    smoke = run_cli("test", "--image", tag, "--json", timeout=300)
    (entry,) = json.loads(smoke.stdout)["servers"]
    statuses = {check["check"]: check["status"] for check in entry["results"]}
    assert smoke.returncode == 0, f"{statuses}\n{entry['logs'][-2000:]}"
    assert {statuses[name] for name in ("health", "http1", "h2c", "h2-tls", "ws", "lifespan", "graceful")} == {"pass"}
    assert leftover_test_containers(docker_client) == []

    if bootstrapped:
        packages = runtime_packages(docker_client, tag)
        # The interpreter's own packages, and OpenSSL under the name this suite gives it (t64 from trixie on).
        assert {f"python{offline.python}-minimal", f"libpython{offline.python}-stdlib", "libssl3t64"} <= packages
        assert "libssl3" not in packages and "bash" not in packages and "dash" not in packages


def test_a_wheel_linking_a_system_library_gets_it_from_the_newer_suite(docker_client, tags, tmp_path):
    """pyodbc links libodbc.so.2, which the trixie base lacks: apt installs Debian's libodbc2 from trixie."""
    offline = next(o for o in NEW if o.suite == "trixie")
    base, bootstrapped = base_for(docker_client, offline)
    context = tmp_path / "native-libs"
    shutil.copytree(PROJECTS / "native-libs", context)
    tag = f"{TAG_PREFIX}imgtool-test-native-py{offline.python}:granian"
    tags.add(tag)
    build = run_cli("build", "--base", base, "--tag", tag, cwd=context, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    with running(docker_client, tag) as (_, target):
        wait_for_health(target.url("/health"))
        assert httpx.get(target.url("/"), timeout=5).text == "native-libs sample: odbc drivers []"
        assert httpx.get(target.url("/image.png"), timeout=5).content.startswith(b"\x89PNG")
    if bootstrapped:  # (the runtime-libs stage's own line, "installed with apt", is not shown when it is cached)
        assert {"libodbc2", "libpython3.13-stdlib"} <= runtime_packages(docker_client, tag)


def test_the_project_pin_picks_the_python(docker_client, tags, tmp_path):
    context = copy_reference_app(tmp_path / "pinned")
    (context / ".tool-versions").write_text("nodejs 22.12.0\npython 3.14.2\n")
    tag = f"{TAG_PREFIX}imgtool-test-pinned:granian"
    tags.add(tag)
    build = run_cli("build", "--server", "granian", "--tag", tag, cwd=context, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    assert "python: 3.14, detected (Python 3.14, .tool-versions in pinned)" in build.stderr
    assert run_once(docker_client, tag, "python", "-c", "import sys; print(sys.version_info[:2])") == "(3, 14)"


def test_a_pin_no_base_has_is_one_line_naming_the_pythons_there_are(docker_client, tmp_path):
    context = copy_reference_app(tmp_path / "future")
    # No registry publishes python:3.16-slim yet and no Debian suite here ships 3.16: the same answer everywhere.
    (context / ".python-version").write_text("3.16\n")
    before = {image.id for image in docker_client.images.list()}
    result = run_cli("build", "--server", "granian", cwd=context, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("imgtool: error:")]
    assert errors == [
        "imgtool: error: the project needs Python 3.16 (.python-version in future), python:3.16-slim cannot be "
        f"pulled ({errors[0].split('cannot be pulled (', 1)[1].split(')', 1)[0]}) and no Debian suite reachable "
        "here ships Python 3.16: offline bases are Python 3.11 (bookworm), 3.13 (trixie), 3.14 (forky), "
        "3.15 (forky); change .python-version in future, or pull a Python 3.16 image where a registry answers"
    ]
    assert "Traceback" not in result.stderr
    assert {image.id for image in docker_client.images.list()} == before
    assert leftover_test_containers(docker_client) == []
