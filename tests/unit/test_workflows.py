"""The GitHub workflows (the project's own and the one `imgtool workflow` writes): schema, zizmor,
yamllint, pinned actions, least privilege, and every imgtool call they make is a valid CLI call."""

from __future__ import annotations

import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
import typer.main
import yaml

from tests.conftest import ROOT, run_cli
from toolkit import DISTRIBUTION, IMAGES_DIR, __version__, workflow
from toolkit.cli import app
from toolkit.servers import SERVERS

# Typer >= 0.16 carries its own click; older ones raise click's exceptions.
CLI_ERRORS: tuple[type[Exception], ...] = (typer.TyperException,) if hasattr(typer, "TyperException") else ()
try:
    import click

    CLI_ERRORS = (*CLI_ERRORS, click.ClickException)
except ImportError:  # pragma: no cover
    pass
BIN = Path(sys.executable).parent
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
PROJECT_WORKFLOWS = sorted(WORKFLOWS_DIR.glob("*.yml"))
USES_RE = re.compile(r"^(?P<repo>[\w.-]+/[\w.-]+)@(?P<sha>[0-9a-f]{40}) # (?P<version>v\d+\.\d+\.\d+)$")


def tool(name: str) -> Path:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is a test dependency: pip install -e '.[test]'")
    return path


@pytest.fixture(scope="module")
def user_workflow(tmp_path_factory) -> Path:
    """What a user gets from `imgtool workflow` in their project."""
    project = tmp_path_factory.mktemp("user-project")
    output = project / ".github" / "workflows" / "images.yml"
    result = run_cli("workflow", "-o", str(output))
    assert result.returncode == 0, result.stderr
    return output


@pytest.fixture(params=[*(p.name for p in PROJECT_WORKFLOWS), "generated"])
def workflow_file(request, user_workflow) -> Path:
    return user_workflow if request.param == "generated" else WORKFLOWS_DIR / request.param


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_the_project_has_its_ci_images_and_release_workflows():
    assert {p.name for p in PROJECT_WORKFLOWS} >= {"ci.yml", "images.yml", "release.yml"}


def test_validates_against_the_github_workflow_schema(workflow_file):
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(workflow_file)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_check_can_fail(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n      - nope: 1\n")
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)], capture_output=True
    )
    assert result.returncode != 0


def zizmor(path: Path) -> list[dict]:
    result = subprocess.run(
        [tool("zizmor"), "--offline", "--no-config", "--min-severity", "medium", "--format", "json", str(path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode in (0, 10, 11, 12, 13, 14), result.stderr  # 1x: findings, by worst severity
    return json.loads(result.stdout or "[]")


def test_zizmor_finds_nothing_at_medium_or_above(workflow_file):
    findings = zizmor(workflow_file)
    assert findings == [], "\n".join(f"{f['ident']}: {f['desc']}" for f in findings)


def test_zizmor_check_can_fail(tmp_path):
    risky = tmp_path / "risky.yml"
    risky.write_text(
        "on: pull_request_target\npermissions: write-all\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n        with:\n          ref: ${{ github.event.pull_request.head.sha }}\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    assert zizmor(risky)


def test_yamllint_clean(workflow_file):
    result = subprocess.run(
        [tool("yamllint"), "--strict", "-c", str(ROOT / ".yamllint"), str(workflow_file)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_actions_pinned_by_sha_with_the_known_release(workflow_file):
    known = {action.repo: action for action in workflow.ACTIONS.values()}
    text = workflow_file.read_text()
    uses = [
        line.split("uses:", 1)[1].strip() for line in text.splitlines() if line.strip().startswith(("uses:", "- uses:"))
    ]
    assert uses
    for ref in uses:
        match = USES_RE.match(ref)
        assert match, f"not pinned as owner/repo@<40-hex sha> # vX.Y.Z: {ref}"
        action = known.get(match["repo"])
        assert action is not None, f"{match['repo']} is not in toolkit.workflow.ACTIONS"
        assert (match["sha"], match["version"]) == (action.sha, action.version), ref


def triggers(data: dict) -> dict:
    return data[True] if True in data else data["on"]  # PyYAML reads the `on` key as True


def test_least_privilege_and_no_untrusted_checkout(workflow_file):
    data = load(workflow_file)
    assert "pull_request_target" not in triggers(data) and "workflow_run" not in triggers(data)
    assert data["permissions"] == {"contents": "read"}
    for name, job in data["jobs"].items():
        permissions = job.get("permissions", {})
        steps = job["steps"]
        pushes = any("docker/login-action@" in step.get("uses", "") for step in steps)
        if permissions.get("packages") == "write":
            assert pushes, f"job {name} may write packages but never logs in to a registry"
        # OIDC and attestations: the release's publish job, only on a version tag, in its environment; and
        # an images job that signs what it pushes keylessly (its OIDC token buys the signing certificate).
        oidc = {key: level for key, level in permissions.items() if key in ("id-token", "attestations")}
        if oidc and "attestations" in oidc:
            assert (workflow_file.name, name, job.get("environment")) == ("release.yml", "publish", "pypi")
            assert oidc == {"id-token": "write", "attestations": "write"}
            assert triggers(data) == {"push": {"tags": ["v*"]}}
        elif oidc:
            assert oidc == {"id-token": "write"} and permissions.get("packages") == "write", name
            signs = [step for step in steps if "cosign sign" in step.get("run", "")]
            assert signs and all(step.get("if") == "github.event_name != 'pull_request'" for step in signs), name
        others = {key: level for key, level in permissions.items() if key not in ("packages", *oidc)}
        assert all(level in ("read", "none") for level in others.values()), name
        for step in steps:
            if "actions/checkout@" in step.get("uses", ""):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}: persist-credentials"


def _steps_using(job: dict, action: str) -> list[tuple[int, dict]]:
    return [(index, step) for index, step in enumerate(job["steps"]) if f"/{action}@" in step.get("uses", "")]


@pytest.mark.parametrize("which", ["project", "generated"])
def test_images_workflow_builds_once_tests_each_platform_and_pushes_that_build(which, user_workflow):
    data = load(WORKFLOWS_DIR / "images.yml" if which == "project" else user_workflow)
    job = data["jobs"]["image"]
    assert set(job["strategy"]["matrix"]["server"]) == set(SERVERS)
    assert set(job["strategy"]["matrix"]["python"]) == set(workflow.PYTHONS)
    assert job["permissions"] == {"contents": "read", "packages": "write", "id-token": "write"}
    assert data["env"]["PLATFORMS"] == ",".join(workflow.PLATFORMS) == "linux/amd64,linux/arm64"
    assert triggers(data)["schedule"], "no scheduled rebuild"
    steps = job["steps"]
    builds = _steps_using(job, "build-push-action")
    # One build: every build-push-action step builds the same Dockerfile, contexts, secret and labels.
    same = ("context", "file", "build-contexts", "secret-files", "labels")
    assert len({tuple(step["with"][key] for key in same) for _, step in builds}) == 1
    first = builds[0][1]["with"]
    assert first["file"] == "build/Dockerfile" and first["build-contexts"] == "imgtool-assets=build/assets"
    assert "steps.meta.outputs.labels" in first["labels"]
    # Each platform: built on the builder, loaded into the engine, then smoke-tested (arm64 under QEMU).
    tests = {index: step["run"] for index, step in enumerate(steps) if "imgtool test" in step.get("run", "")}
    loads = [(index, step["with"]) for index, step in builds if step["with"].get("load") is True]
    assert [w["platforms"] for _, w in loads] == list(workflow.PLATFORMS)
    qemu = _steps_using(job, "setup-qemu-action")
    assert qemu and qemu[0][0] < loads[0][0] and "arm64" in qemu[0][1]["with"]["platforms"]
    for index, options in loads:
        arch = options["platforms"].split("/")[1]
        assert options["tags"] == f"${{{{ env.TESTED }}}}:{arch}" and "cache-from" in options
        assert options["provenance"] is False and options["sbom"] is False
        test = tests.get(index + 1, "")
        assert f'--image "$TESTED:{arch}"' in test and "--junit" in test, f"{arch} is not tested right after loading"
    # The push: every platform, attestations, after every test, from the builder's own cache only.
    [(push_index, push_step)] = [(i, step) for i, step in builds if "load" not in step["with"]]
    push = push_step["with"]
    assert push_step["id"] == "push" and push_index > max(tests)
    assert push["platforms"] == "${{ env.PLATFORMS }}" and push["push"] == "${{ github.event_name != 'pull_request' }}"
    assert push["sbom"] is True and push["provenance"] == "mode=max"
    assert "steps.meta.outputs.tags" in push["tags"] and "steps.meta.outputs.annotations" in push["annotations"]
    assert "cache-from" not in push and push["cache-to"].endswith(",mode=max")
    assert job["env"]["CACHE"].startswith("type=gha,scope=")
    # Then the pushed layers are compared with the tested ones.
    check = steps[push_index + 1]
    assert "steps.push.outputs.digest" in check["env"]["DIGEST"] and "RootFS.DiffIDs" in check["run"]
    assert "RootFS.Layers" in check["run"] and "exit 1" in check["run"]
    # The JUnit reports are uploaded whether the tests passed or not.
    [(upload_index, upload)] = _steps_using(job, "upload-artifact")
    assert upload["if"] == "${{ !cancelled() }}" and upload["with"]["path"] == "build/junit/"
    assert max(tests) < upload_index < push_index
    assert all("build/junit/" in test for test in tests.values())
    names = [call[1] for call in commands(data, "imgtool")]
    assert "build" not in names, "the image is built by buildx once; imgtool build would be a second build"
    assert names.index("render") < names.index("test")


def test_release_publishes_the_checked_files_by_trusted_publishing_with_attestations():
    data = load(WORKFLOWS_DIR / "release.yml")
    assert triggers(data) == {"push": {"tags": ["v*"]}}
    build, publish = data["jobs"]["build"], data["jobs"]["publish"]
    assert "permissions" not in build and publish["needs"] == "build"  # the build job only reads
    checks = "\n".join(step.get("run", "") for step in build["steps"])
    assert "python -m build" in checks and "twine check --strict dist/*" in checks
    # The wheel, installed, must report the tag's version under the distribution's name.
    assert f'test "$version" = "imgtool ${{GITHUB_REF_NAME#v}} ({DISTRIBUTION})"' in checks
    [(_, uploaded)] = _steps_using(build, "upload-artifact")
    [(_, downloaded)] = _steps_using(publish, "download-artifact")
    assert uploaded["with"]["name"] == downloaded["with"]["name"] and downloaded["with"]["path"] == "dist/"
    # OIDC only: no secret, no password, no token input anywhere.
    text = (WORKFLOWS_DIR / "release.yml").read_text()
    assert "secrets." not in text and "password" not in text.lower() and "TWINE_" + "PASSWORD" not in text
    [(_, attest)] = _steps_using(publish, "attest-build-provenance")
    assert attest["with"]["subject-path"] == "dist/*"
    upload = publish["steps"][-1]["run"]
    assert "python -m pypi_attestations sign dist/*.whl dist/*.tar.gz" in upload
    assert upload.rstrip().endswith("python -m twine upload --attestations dist/*")


@pytest.mark.parametrize("which", ["project", "generated"])
def test_images_workflow_signs_the_pushed_digest_keylessly(which, user_workflow):
    steps = load(WORKFLOWS_DIR / "images.yml" if which == "project" else user_workflow)["jobs"]["image"]["steps"]
    names = [step.get("id") for step in steps]
    push = steps[names.index("push")]
    assert "docker/build-push-action@" in push["uses"]
    installer = next(i for i, step in enumerate(steps) if "sigstore/cosign-installer@" in step.get("uses", ""))
    sign = steps[installer + 1]
    assert installer > names.index("push")
    # No key: Sigstore's keyless flow with the job's OIDC token; only where something was pushed.
    assert "cosign sign --yes" in sign["run"] and "--key" not in sign["run"]
    assert sign["env"]["DIGEST"] == "${{ steps.push.outputs.digest }}" and "@$DIGEST" in sign["run"]
    assert sign["if"] == steps[installer]["if"] == push["with"]["push"].strip("${} ")


def test_project_images_workflow_is_what_imgtool_workflow_writes():
    expected = workflow.render_workflow(context="images/app", install="-e .")
    assert (WORKFLOWS_DIR / "images.yml").read_text() == expected, "regenerate .github/workflows/images.yml"


def test_ci_lints_the_dockerfile_of_every_server():
    run = next(
        step["run"]
        for step in load(WORKFLOWS_DIR / "ci.yml")["jobs"]["lint"]["steps"]
        if "hadolint" in step.get("name", "")
    )
    loop = re.search(r"for server in ([\w ]+); do", run)
    assert loop and loop[1].split() == list(SERVERS)
    assert "imgtool render" in run and "hadolint" in run


# ---- every imgtool call in a `run:` step is a valid CLI call --------------------------------


def _resolve(value: str, env: dict[str, str], matrix: dict[str, str]) -> str:
    value = re.sub(r"\$\{\{\s*matrix\.(\w+)\s*\}\}", lambda m: matrix[m[1]], value)
    value = re.sub(r"\$\{\{\s*env\.(\w+)\s*\}\}", lambda m: env[m[1]], value)
    return value


def _expand(word: str, env: dict[str, str]) -> str:
    """Shell $VAR / ${VAR} from the workflow's env; anything else (e.g. $GITHUB_OUTPUT) becomes a placeholder."""
    return re.sub(r"\$(\w+)|\$\{(\w+)\}", lambda m: env.get(m[1] or m[2], "placeholder"), word)


def _shell_commands(script: str, env: dict[str, str]):
    """Simple commands of a run script as argv lists: `for VAR in a b; do` loops are unrolled, redirections
    dropped, $VARS expanded."""
    script = script.replace("\\\n", " ")
    loops = dict(re.findall(r"for (\w+) in ([^;\n]+); do", script))
    names = list(loops)
    for values in itertools.product(*(loops[name].split() for name in names)):
        scope = {**env, **dict(zip(names, values, strict=True))}
        for line in script.splitlines():
            for part in re.split(r"&&|\|\||;|\|", line):
                words = [_expand(word, scope) for word in shlex.split(part, comments=True)]
                argv, target_next = [], False
                for word in words:
                    if target_next:  # the file of a `>> FILE` redirection
                        target_next = False
                    elif word in (">", ">>", "<", "2>", "2>>"):
                        target_next = True
                    elif not word.startswith((">", "<", "2>")):
                        argv.append(word)
                if argv:
                    yield argv


def commands(data: dict, program: str):
    """(job, argv...) of every `program ...` command in the run steps, once per matrix combination,
    with $VARS and ${{ matrix/env }} expressions filled in from the workflow ("": every command)."""
    prefix = program.split()
    for job_name, job in data["jobs"].items():
        matrix = job.get("strategy", {}).get("matrix", {})
        axes = {key: values for key, values in matrix.items() if isinstance(values, list)}
        combos = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())] or [{}]
        for combo in combos:
            combo = {key: str(value) for key, value in combo.items()}
            env = {key: str(value) for key, value in data.get("env", {}).items()}
            env.update({key: _resolve(str(value), env, combo) for key, value in job.get("env", {}).items()})
            for step in job["steps"]:
                step_env = {**env, **{k: _resolve(str(v), env, combo) for k, v in step.get("env", {}).items()}}
                for argv in _shell_commands(_resolve(step.get("run", ""), step_env, combo), step_env):
                    if argv[: len(prefix)] == prefix:
                        yield (job_name, *argv[len(prefix) :])


def _pending(ctx) -> list[str]:
    """The subcommand and its arguments a group's context left unparsed (click moved them in 8.2)."""
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = ctx.protected_args
    return [*protected, *ctx.args]


def check_imgtool_call(argv: list[str]) -> None:
    """Parse argv exactly as `imgtool` would; raises click's error for an unknown command or option."""
    group = typer.main.get_command(app)
    ctx = group.make_context("imgtool", list(argv))
    name, command, rest = group.resolve_command(ctx, _pending(ctx))
    assert command is not None, name
    while hasattr(command, "resolve_command"):  # a command group (typer's own click, or click's)
        ctx = command.make_context(name, rest, parent=ctx)
        name, command, rest = command.resolve_command(ctx, _pending(ctx))
    command.make_context(name, rest, parent=ctx)


def test_every_imgtool_call_in_the_workflows_is_a_valid_cli_call(workflow_file, tmp_path, monkeypatch):
    # Where the calls run: a checkout (its images/ here) in which the job made build/junit first; paths are
    # checked as they are parsed.
    (tmp_path / "build" / "junit").mkdir(parents=True)
    (tmp_path / "images").symlink_to(ROOT / "images")
    monkeypatch.chdir(tmp_path)
    calls = [call[1:] for call in commands(load(workflow_file), "imgtool")]
    expected = {"ci.yml": {"render"}, "release.yml": set()}.get(workflow_file.name, {"render", "test"})
    assert {call[0] for call in calls} == expected
    for argv in calls:
        try:
            check_imgtool_call(argv)
        except CLI_ERRORS as exc:
            pytest.fail(f"imgtool {shlex.join(argv)}: {exc.format_message()}")
        if "--server" in argv:
            assert argv[argv.index("--server") + 1] in SERVERS


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "--serve", "granian"],
        ["tests", "--server", "granian"],
        ["render", "--output"],
        ["test", "--port", "x"],
    ],
)
def test_the_cli_call_check_can_fail(argv):
    with pytest.raises(CLI_ERRORS):
        check_imgtool_call(argv)


def test_every_toolkit_workflow_call_parses(workflow_file):
    calls = [call[1:] for call in commands(load(workflow_file), "python -m toolkit.workflow")]
    if "image" in load(workflow_file)["jobs"]:
        assert calls
    for argv in calls:
        workflow.argument_parser().parse_args(argv)


def test_the_workflow_calls_run_in_a_subprocess_too():
    for argv in (["workflow", "--help"], ["build", "--help"], ["test", "--help"], ["render", "--help"]):
        result = run_cli(*argv)
        assert result.returncode == 0, result.stderr


# ---- imgtool workflow ------------------------------------------------------------------------


def test_workflow_command_never_overwrites_without_force(tmp_path):
    output = tmp_path / "images.yml"
    output.write_text("mine\n")
    result = run_cli("workflow", "-o", str(output))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--force" in lines[0] and "Traceback" not in result.stderr
    assert output.read_text() == "mine\n"
    result = run_cli("workflow", "-o", str(output), "--force", "-s", "granian", "--python", "3.12")
    assert result.returncode == 0, result.stderr
    data = load(output)
    assert data["jobs"]["image"]["strategy"]["matrix"] == {"server": ["granian"], "python": ["3.12"]}


@pytest.mark.parametrize(
    "args", [["-s", "nginx"], ["--python", "3"], ["--context", "/abs"], ["--context", "../elsewhere"]]
)
def test_workflow_command_rejects_bad_input_in_one_line(tmp_path, args):
    output = tmp_path / "images.yml"
    result = run_cli("workflow", "-o", str(output), *args)
    assert result.returncode == 2
    assert len([line for line in result.stderr.splitlines() if line.strip()]) == 1
    assert not output.exists()


def test_generated_workflow_installs_this_imgtool_by_its_distribution_name_and_builds_the_given_context():
    data = yaml.safe_load(workflow.render_workflow(context="src/app"))
    assert data["env"]["CONTEXT"] == "src/app"
    install = next(step["run"] for step in data["jobs"]["image"]["steps"] if step.get("name") == "Install imgtool")
    # `imgtool` on the index is another project: the real name, at the version that wrote the workflow.
    assert (
        install == f"python -m pip install {DISTRIBUTION}=={__version__}" == "python -m pip install imgtool-asgi==0.1.0"
    )


def test_every_action_in_the_list_is_used():
    used = "".join(path.read_text() for path in PROJECT_WORKFLOWS) + workflow.render_workflow()
    assert [a.repo for a in workflow.ACTIONS.values() if f"{a.repo}@{a.sha}" not in used] == []


# ---- nothing needs root but through `sudo -n` (GitHub's runner user is not root) ------------

ROOT_COMMANDS = {
    "apt", "apt-get", "dpkg", "debootstrap", "systemctl", "service", "mount", "umount", "modprobe", "sysctl",
    "dockerd", "ip", "iptables", "chown", "useradd", "groupadd", "update-binfmts",
}  # fmt: skip


def test_no_step_needs_root_without_sudo_n(workflow_file):
    for _, *argv in commands(load(workflow_file), ""):
        if argv[0] == "sudo":
            assert argv[1:2] == ["-n"], f"sudo without -n can wait for a password: {shlex.join(argv)}"
        else:
            assert argv[0] not in ROOT_COMMANDS, f"needs root, say `sudo -n`: {shlex.join(argv)}"


def test_the_root_check_can_fail():
    data = {"jobs": {"x": {"steps": [{"run": "sudo apt-get install -y wrk"}, {"run": "apt-get update"}]}}}
    argvs = [argv for _, *argv in commands(data, "")]
    assert argvs == [["sudo", "apt-get", "install", "-y", "wrk"], ["apt-get", "update"]]


def test_the_scripts_ci_runs_use_root_only_through_sudo_n():
    """scripts/test -> scripts/setup -> scripts/provision-docker: what needs root goes through sudo -n."""
    setup = (ROOT / "scripts" / "setup").read_text()
    for line in setup.splitlines():
        code = line.split("#")[0]
        if code.strip().startswith("log "):  # a message, not a command
            continue
        if re.search(r"(?<!command -v )\b(apt-get|debootstrap)\b|base bootstrap", code):
            assert "as_root " in code, line
    assert 'as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo -n "$@"; fi; }' in setup
    provision = (ROOT / "scripts" / "provision-docker").read_text()
    guard = provision.index("if [[ $EUID -ne 0 ]]; then\n    ready && exit 0\n")
    assert "exec sudo -n " in provision[guard:] and guard < provision.index("\nensure_cli\n")


# ---- the imgtool-assets context staged for every platform ------------------------------------

ELF_MACHINE = {"amd64": 0x3E, "arm64": 0xB7}


def test_staged_assets_hold_uv_for_each_platform(tmp_path, capsys):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("COPY --from=imgtool-assets launch.py /x\n")
    dest = tmp_path / "assets"
    assert workflow.main(["assets", "--dockerfile", str(dockerfile), str(dest)]) == 0
    assert capsys.readouterr().out == f"context={dest}\n"
    for arch, machine in ELF_MACHINE.items():
        uv = dest / "uv" / arch / "uv"
        header = uv.read_bytes()[:20]
        assert header[:4] == b"\x7fELF" and int.from_bytes(header[18:20], "little") == machine, arch
        assert uv.stat().st_mode & 0o111
    shipped = {p.name for p in (IMAGES_DIR / "assets").glob("*.py")} | {"lock_export.py"}
    assert {p.name for p in dest.glob("*.py")} == shipped


def test_assets_command_errors_in_one_line(tmp_path, capsys):
    assert workflow.main(["assets", "--dockerfile", str(tmp_path / "missing"), str(tmp_path / "a")]) == 2
    assert workflow.main(["assets", "--dockerfile", str(ROOT / "pyproject.toml"), str(tmp_path / "a")]) == 2
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("COPY --from=imgtool-assets a /\n")
    assert (
        workflow.main(["assets", "--dockerfile", str(dockerfile), "--platforms", "linux/s390x", str(tmp_path / "a")])
        == 2
    )
    assert all(line.startswith("imgtool: error:") for line in capsys.readouterr().err.splitlines())
