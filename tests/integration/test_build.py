"""`imgtool build` on a real engine: five images, lean, non-root, serving; fast code-only rebuilds."""

from __future__ import annotations

import json
import re
import secrets

import httpx
import pytest

from tests.conftest import TAG_PREFIX, run_cli
from tests.integration.conftest import copy_reference_app, edit, running, wait_for_health
from toolkit.servers import SERVERS

# What a build must not leave in an image: pip, setuptools, wheel, caches, compilers (the image has no shell).
LEFTOVERS = (
    "import glob, shutil\n"
    "found = glob.glob('/opt/venv/bin/pip*') + glob.glob('/opt/venv/lib/python3*/site-packages/setuptools')\n"
    "found += glob.glob('/opt/venv/lib/python3*/site-packages/wheel') + glob.glob('/root/.cache')\n"
    "found += [name for name in ('gcc', 'cc') if shutil.which(name)]\n"
    "print(found)\n"
)


@pytest.mark.parametrize("server", SERVERS)
def test_image_serves_as_non_root_without_pip(docker_client, reference_images, server):
    tag = reference_images[server]
    image = docker_client.images.get(tag)
    labels = image.labels
    assert labels["imgtool.server"] == server
    assert labels["imgtool.protocols"] == ",".join(sorted(SERVERS[server].protocols))
    assert labels["org.opencontainers.image.base.name"]
    assert image.attrs["Config"]["User"] == "10001:10001"

    with running(docker_client, tag) as (container, target):
        wait_for_health(target.url("/health"))
        index = httpx.get(target.url("/"), timeout=5)
        assert index.status_code == 200 and "reference app" in index.text
        uid = container.exec_run(["python3", "-c", "import os; print(os.stat('/proc/1').st_uid)"])
        assert uid.output.strip() != b"0"
        no_pip = container.exec_run(["python3", "-c", "import pip"])
        assert no_pip.exit_code != 0 and b"No module named 'pip'" in no_pip.output
        for excluded in ("faker", "pygments"):
            absent = container.exec_run(["python3", "-c", f"import {excluded}"])
            assert absent.exit_code != 0, f"{excluded} is excluded by the app's [tool.imgtool] but shipped"
        failing = httpx.get(target.url("/error"), timeout=5)
        assert failing.status_code == 500
        assert httpx.get(target.url("/health"), timeout=5).status_code == 200
        leftovers = container.exec_run(["python3", "-c", LEFTOVERS])
        assert leftovers.exit_code == 0 and leftovers.output.strip() == b"[]", leftovers.output


def build_steps(progress: str) -> dict[str, bool]:
    """BuildKit's plain progress → {step description: served from cache}."""
    names, cached = {}, set()
    for line in progress.splitlines():
        if match := re.match(r"#(\d+) (\[[^\]]+\] .*)", line):
            names.setdefault(match.group(1), match.group(2))
        elif match := re.match(r"#(\d+) CACHED", line):
            cached.add(match.group(1))
    return {name: number in cached for number, name in names.items()}


def step(steps: dict[str, bool], *needles: str) -> bool:
    (found,) = [cached for name, cached in steps.items() if all(needle in name for needle in needles)]
    return found


def test_code_only_change_reuses_the_dependency_layers_and_the_import_check(docker_client, reference_images, tmp_path):
    """A code change inside a route handler re-runs only the app's own steps: the dependency install, the venv
    copy, the runtime's libraries and the import check (its input, the import-time skeleton, is unchanged) are
    cache hits.

    (Layer digests are not compared: BuildKit 0.8 keeps one cache record per --no-cache build of the
    same step and may serve either, so equal content can come with different digests.)
    """
    context = copy_reference_app(tmp_path / "app")
    tag = f"{TAG_PREFIX}imgtool-test-rebuild:granian"
    try:
        # The first build imports the app itself and records what ran at import; the second imports the
        # skeleton once (a new input for the check); from then on an edit to a handler reuses that check.
        for _ in range(2):
            built = run_cli("build", "--context", str(context), "--tag", tag, "--json")
            assert built.returncode == 0, built.stderr
        before = docker_client.images.get(tag).attrs["RootFS"]["Layers"]
        # A change no earlier run made: BuildKit's cache is keyed by content.
        changed = f"Hello {secrets.token_hex(4)} from imgtool"
        edit(context / "app.py", "Hello from imgtool's reference app", changed)
        second = run_cli("build", "--context", str(context), "--tag", tag)
        assert second.returncode == 0, second.stderr
        after = docker_client.images.get(tag).attrs["RootFS"]["Layers"]
        with running(docker_client, tag) as (_, target):
            wait_for_health(target.url("/health"))
            served = httpx.get(target.url("/"), timeout=5).text
        assert served == f"{changed}\n"
    finally:
        docker_client.images.remove(tag, force=True)
    steps = build_steps(second.stderr)
    assert step(steps, "[deps", "uv pip install"), "the dependency install ran again"
    assert step(steps, "[runtime-env", "COPY --from=deps /opt/venv"), "the venv was copied again"
    assert step(steps, "[runtime-libs", "runtime_root.py libraries"), "the runtime's libraries were assembled again"
    assert step(steps, "[import-check", "import_check.py"), "the import check ran again for a handler's body"
    assert not step(steps, "[builder", "COPY . /app"), "the changed code was not copied"
    assert len(before) == len(after) and before[-1] != after[-1]


def test_an_import_that_takes_a_new_path_is_checked_with_the_app_itself(docker_client, reference_images, tmp_path):
    """The skeleton stubs bodies that did not run at the last import; if the app now calls one at import, the
    check says stale (not broken) and imgtool builds again with the app itself. A broken import still fails."""
    context = copy_reference_app(tmp_path / "app")
    tag = f"{TAG_PREFIX}imgtool-test-import-path:granian"
    try:
        first = run_cli("build", "--context", str(context), "--tag", tag, "--json")
        assert first.returncode == 0, first.stderr
        # log() never ran at import, so it is a stub in the skeleton; now it runs at import.
        edit(context / "app.py", "app = Litestar(", 'log("imported")\n\napp = Litestar(')
        second = run_cli("build", "--context", str(context), "--tag", tag, "--json")
        assert second.returncode == 0, second.stderr
        assert "stubbed function(s) ran at import: log" in second.stderr
        report = docker_client.containers.run(
            tag, ["python", "-c", "print(open('/opt/imgtool/import-check.json').read())"], remove=True
        )
        assert ["app.py", "log"] in json.loads(report)["executed"]
        # A missing module inside a body that runs at import is still the app's error, in one line.
        edit(
            context / "app.py",
            "def log(message: str) -> None:\n",
            "def log(message: str) -> None:\n    import not_installed_anywhere  # noqa\n",
        )
        third = run_cli("build", "--context", str(context), "--tag", tag)
        assert third.returncode == 2
        assert (
            "cannot be imported in the image (ModuleNotFoundError: No module named 'not_installed_anywhere' "
            "(at app.py:" in third.stderr
        )
    finally:
        docker_client.images.remove(tag, force=True)


def test_build_json_reports_tag_id_size_and_time(reference_images):
    result = run_cli("build", "--demo", "--server", "granian", "--json")
    assert result.returncode == 0, result.stderr
    (entry,) = json.loads(result.stdout)
    assert entry["tag"] == reference_images["granian"]
    assert entry["image_id"].startswith("sha256:") and entry["size_bytes"] > 0 and entry["seconds"] > 0


def test_gunicorn_build_prints_the_deprecation_notice(reference_images):
    result = run_cli("build", "--demo", "--server", "gunicorn")
    assert result.returncode == 0
    assert "legacy" in result.stderr and "uvicorn --workers" in result.stderr


def test_render_prints_the_dockerfile_build_uses(reference_images):
    result = run_cli("render", "--demo", "--server", "hypercorn")
    assert result.returncode == 0
    stages = [line.split()[-1] for line in result.stdout.splitlines() if line.startswith("FROM ") and " AS " in line]
    assert stages[:2] == ["deps", "builder"] and "runtime" in stages and '"hypercorn"' in result.stdout


def test_base_list_shows_the_base_in_use(docker_client, reference_images):
    result = run_cli("base", "list", "--json")
    assert result.returncode == 0
    base = docker_client.images.get(reference_images["granian"]).labels["org.opencontainers.image.base.name"]
    assert base in [entry["name"] for entry in json.loads(result.stdout)]
