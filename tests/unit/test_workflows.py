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
from toolkit import IMAGES_DIR, workflow
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


def test_the_project_has_its_ci_and_images_workflows():
    assert {p.name for p in PROJECT_WORKFLOWS} >= {"ci.yml", "images.yml"}


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


def test_least_privilege_and_no_untrusted_checkout(workflow_file):
    data = load(workflow_file)
    triggers = data[True] if True in data else data["on"]  # PyYAML reads the `on` key as True
    assert "pull_request_target" not in triggers and "workflow_run" not in triggers
    assert data["permissions"] == {"contents": "read"}
    for name, job in data["jobs"].items():
        permissions = job.get("permissions", {})
        steps = job["steps"]
        pushes = any("docker/login-action@" in step.get("uses", "") for step in steps)
        if permissions.get("packages") == "write":
            assert pushes, f"job {name} may write packages but never logs in to a registry"
        assert all(level in ("read", "none") for key, level in permissions.items() if key != "packages"), name
        for step in steps:
            if "actions/checkout@" in step.get("uses", ""):
                assert step.get("with", {}).get("persist-credentials") is False, f"{name}: persist-credentials"


@pytest.mark.parametrize("which", ["project", "generated"])
def test_images_workflow_builds_tests_and_pushes_every_server_multi_arch_with_attestations(which, user_workflow):
    data = load(WORKFLOWS_DIR / "images.yml" if which == "project" else user_workflow)
    job = data["jobs"]["image"]
    assert set(job["strategy"]["matrix"]["server"]) == set(SERVERS)
    assert set(job["strategy"]["matrix"]["python"]) == set(workflow.PYTHONS)
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    push = job["steps"][-1]["with"]
    assert push["sbom"] is True and push["provenance"] == "mode=max"
    assert push["file"] == "build/Dockerfile" and push["build-contexts"] == "imgtool-assets=build/assets"
    assert data["env"]["PLATFORMS"] == "linux/amd64,linux/arm64" and push["platforms"] == "${{ env.PLATFORMS }}"
    assert "steps.meta.outputs.labels" in push["labels"] and "steps.meta.outputs.tags" in push["tags"]
    assert data[True]["schedule"], "no scheduled rebuild"
    names = [call[1] for call in commands(data, "imgtool")]
    assert names.index("build") < names.index("test") < names.index("render")


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
    with $VARS and ${{ matrix/env }} expressions filled in from the workflow."""
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


def test_every_imgtool_call_in_the_workflows_is_a_valid_cli_call(workflow_file):
    calls = [call[1:] for call in commands(load(workflow_file), "imgtool")]
    if workflow_file.name == "ci.yml":
        assert {call[0] for call in calls} == {"render"}
    else:
        assert {call[0] for call in calls} == {"build", "test", "render"}
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
        workflow._parser().parse_args(argv)


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


def test_generated_workflow_installs_this_imgtool_and_builds_the_given_context():
    data = yaml.safe_load(workflow.render_workflow(context="src/app"))
    assert data["env"]["CONTEXT"] == "src/app"
    install = next(step["run"] for step in data["jobs"]["image"]["steps"] if step.get("name") == "Install imgtool")
    assert install == f"python -m pip install imgtool=={workflow.__version__}"


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
