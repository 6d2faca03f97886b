"""`imgtool dev`: the daily loop. A dev variant of the image, run with Compose Watch.

The dev image is the production Dockerfile plus a `dev` target on its builder stage
(images/dev.Dockerfile.j2): the same base, the same dependency install and import check, plus the
server's reload extra, served by the server's reload mode. The compose file it comes with carries a
`develop.watch` section, so `docker compose -f FILE up --watch` works on its own:
  sync     the project directory → /app in the running container (the reloader restarts the app);
  rebuild  each dependency file (pyproject.toml, uv.lock, requirements*.txt) → a new image and container.

What differs from the production container, and why:
  - the app directory is owned by the app user (UID 10001, still not root): Compose Watch copies
    edited files in with `tar` run as the container's user, so it must be able to write there;
  - no read-only root filesystem (the synced code lives in the container's writable layer); the
    capabilities are still all dropped, no-new-privileges and the /tmp tmpfs stay;
  - the image keeps the builder's shell and tar (Compose Watch needs `tar`, `mkdir`, `stat`, `rmdir`);
  - one process, no worker count, and no import pre-check at start: a broken edit leaves the
    reloader running, and the next save brings the app back.

Which server: uvicorn by default. Its `--reload` is a supervisor that restarts a fresh server
process on each change (watchfiles, inotify) and kept up with every edit here, including saves that
arrive while the app is restarting; granian's `--reload` (granian[reload]) was as fast but once stopped
reloading after an edit arrived while its worker was starting, and hypercorn's `--reload` polls and
took 4-15 s. `--server granian` or `--server hypercorn` use theirs; daphne has no reload mode and
gunicorn is legacy (its worker is uvicorn's).

Model building is pure (`dev_plan`, `dev_model`); `emit` writes and validates, `run` starts compose.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from toolkit import __version__, validate
from toolkit.assets import CONTEXT_NAME
from toolkit.buildfiles import assets_dir, build_dir
from toolkit.compose import (
    CA_SECRET,
    MAX_PORT,
    MIN_HOST_PORT,
    healthcheck,
    write_compose,
    yaml_body,
)
from toolkit.detect import DependencyKind, DependencySource
from toolkit.errors import EnvironmentProblem, Interrupted, UsageError
from toolkit.indexes import BuildSecret, compose_secrets
from toolkit.plan import APP_DIR, BuildPlan
from toolkit.services import Selected, with_services

DEFAULT_PORT = 8000
SERVICE = "app"
DEV_TARGET = "dev"
TEMPLATE = "dev.Dockerfile.j2"
# Files and directories never worth copying into the container.
SYNC_IGNORE = (
    ".imgtool/",
    ".venv/",
    "venv/",
    "__pycache__/",
    "*.pyc",
    ".pytest_cache/",
    ".mypy_cache/",
    ".ruff_cache/",
)


@dataclass(frozen=True)
class ReloadMode:
    """How a server runs in dev: its reload command (`{app}`, `$PORT` as in the registry) and extra packages."""

    command: str
    packages: tuple[str, ...] = ()


RELOAD: dict[str, ReloadMode] = {
    # uvicorn uses watchfiles (inotify) when it is installed, else polls every 0.25 s.
    "uvicorn": ReloadMode(
        f"uvicorn {{app}} --host 0.0.0.0 --port $PORT --reload --reload-dir {APP_DIR} --lifespan auto",
        ("watchfiles>=0.21,<2",),
    ),
    # granian's reloader needs the `reload` extra (watchfiles).
    "granian": ReloadMode(
        f"granian --interface asgi --host 0.0.0.0 --port $PORT --http auto --reload --reload-paths {APP_DIR} {{app}}",
        ("granian[reload]>=2.5,<3",),
    ),
    # hypercorn's reloader polls the imported modules' files (no extra package).
    "hypercorn": ReloadMode("hypercorn {app} --bind 0.0.0.0:$PORT --reload"),
}
NO_RELOAD = {
    "daphne": "daphne has no reload mode",
    "gunicorn": "gunicorn is legacy here and its worker is uvicorn's",
}


def reload_mode(server: str) -> ReloadMode:
    if server in RELOAD:
        return RELOAD[server]
    why = NO_RELOAD.get(server, f"{server} has no reload mode imgtool knows")
    raise UsageError(f"{why}: run `imgtool dev --server uvicorn` (or granian, hypercorn)")


# ---- the plan (pure) ----


def dev_dependencies(deps: DependencySource, extras: tuple[str, ...] = ()) -> DependencySource:
    """Dependencies read from files in the build, so a rebuild after an edit installs the new ones.

    `[project] dependencies` are otherwise written into the Dockerfile (which a rebuild would not
    re-render): in dev, uv reads them from the copied pyproject.toml (`uv pip install -r pyproject.toml`,
    with `--extra` for the [tool.imgtool] extras).
    """
    if deps.kind != DependencyKind.PYPROJECT:
        return deps
    return DependencySource(
        DependencyKind.REQUIREMENTS,
        files=("pyproject.toml",),
        requirements="pyproject.toml",
        install_paths=deps.install_paths,
        extras=extras,
        group_packages=deps.group_packages,
    )


def dev_plan(plan: BuildPlan) -> BuildPlan:
    """The production plan, turned into the dev variant's: reload command, reload extra, one process."""
    mode = reload_mode(plan.server.name)
    config = replace(plan.config, deps=dev_dependencies(plan.config.deps, plan.config.selection.extras))
    server = replace(plan.server, command=tuple(shlex.split(mode.command)))
    server_packages = () if plan.base.server_base else plan.server.packages
    requirements = tuple(dict.fromkeys((*config.dependencies, *server_packages, *mode.packages)))
    # The reloaders need their supervisor process: no single-process mode (IMGTOOL_ONE_WORKER).
    env = {
        **{key: value for key, value in plan.env.items() if key != "IMGTOOL_ONE_WORKER"},
        "IMGTOOL_DEFAULT_WORKERS": "1",
        # No import pre-check: with a broken edit the reloader must keep running for the next save.
        "IMGTOOL_PREFLIGHT": "0",
    }
    return replace(
        plan,
        config=config,
        server=server,
        requirements=requirements,
        command=tuple(server.argv(config.app)),
        env=env,
        tag=f"{plan.tag.rsplit(':', 1)[0]}:{plan.server.name}-dev",
    )


def dependency_files(plan: BuildPlan) -> tuple[str, ...]:
    """Context-relative files whose change needs a new image (the rest is synced)."""
    files = list(plan.deps.files)
    if plan.deps.context_mount and plan.deps.requirements:
        files.append(plan.deps.requirements)
    if (plan.config.context / "pyproject.toml").is_file():
        files.append("pyproject.toml")
    return tuple(dict.fromkeys(files))


# ---- the compose model (pure) ----


@dataclass(frozen=True)
class DevPaths:
    """Paths as the compose file writes them: relative to its directory where possible, else absolute."""

    context: str
    dockerfile: str
    assets: str
    # What the sync rule must skip inside the context (the compose file and .imgtool/ when they live there).
    ignore: tuple[str, ...] = ()


def dev_paths(plan: BuildPlan, output: Path) -> DevPaths:
    home = Path(os.path.abspath(output.parent))
    context = Path(os.path.abspath(plan.config.context))
    dockerfile = Path(os.path.abspath(build_dir(output))) / f"{plan.server.name}.dev.Dockerfile"
    inside = context.is_relative_to(home)
    ignore: list[str] = []
    for path in (Path(os.path.abspath(output)), Path(os.path.abspath(output.parent / ".imgtool"))):
        if path.is_relative_to(context) and path != context:
            ignore.append(path.relative_to(context).as_posix() + ("/" if path.name == ".imgtool" else ""))
    return DevPaths(
        context=os.path.relpath(context, home) if inside else str(context),
        dockerfile=os.path.relpath(dockerfile, context) if inside else str(dockerfile),
        assets=os.path.relpath(os.path.abspath(assets_dir(output)), home),
        ignore=tuple(ignore),
    )


def _watch_path(context: str, file: str = "") -> str:
    """A watched path as compose reads it: relative to the compose file's directory, or absolute."""
    return os.path.normpath(os.path.join(context, file)) if file else context


def watch_rules(plan: BuildPlan, paths: DevPaths) -> list[dict]:
    """`develop.watch`: sync the project into /app, rebuild on each dependency file."""
    files = dependency_files(plan)
    ignore = list(dict.fromkeys([*files, *paths.ignore, *SYNC_IGNORE]))
    rules: list[dict] = [
        {"action": "sync", "path": _watch_path(paths.context), "target": plan.app_dir, "ignore": ignore}
    ]
    rules += [{"action": "rebuild", "path": _watch_path(paths.context, file)} for file in files]
    return rules


@dataclass(frozen=True)
class DevOptions:
    port: int = DEFAULT_PORT
    network: str | None = None
    ca_secret_file: str | None = None
    secrets: tuple[BuildSecret, ...] = ()
    services: tuple[Selected, ...] = ()
    project: str | None = None
    environment: dict[str, str] = field(default_factory=dict)


def project_name(plan: BuildPlan) -> str:
    return f"imgtool-dev-{plan.config.app_name}"


def check_port(port: int) -> None:
    if not MIN_HOST_PORT <= port <= MAX_PORT:
        raise UsageError(f"--port {port} is outside {MIN_HOST_PORT}-{MAX_PORT}: pass e.g. --port {DEFAULT_PORT}")


def dev_model(plan: BuildPlan, paths: DevPaths, options: DevOptions) -> dict:
    """The dev stack: the app built from the dev target and watched, plus any backing services."""
    check_port(options.port)
    build: dict = {
        "context": paths.context,
        "dockerfile": paths.dockerfile,
        "target": DEV_TARGET,
        "additional_contexts": {CONTEXT_NAME: paths.assets},
    }
    secret_ids = ([CA_SECRET] if options.ca_secret_file else []) + [secret.id for secret in options.secrets]
    if secret_ids:
        build["secrets"] = secret_ids
    if options.network:
        build["network"] = options.network
    service = {
        "build": build,
        "ports": [f"127.0.0.1:{options.port}:{plan.config.port}"],
        "environment": {"PORT": str(plan.config.port), "WEB_CONCURRENCY": "1", **options.environment},
        "healthcheck": {**healthcheck(plan), "start_period": "60s"},
        "stop_grace_period": "10s",
        # Not read-only: Compose Watch writes the synced code into the container (see the module doc).
        "tmpfs": ["/tmp"],
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "labels": {"imgtool": "dev", "imgtool.server": plan.server.name, "imgtool.app": plan.config.app},
        "develop": {"watch": watch_rules(plan, paths)},
    }
    model: dict = {"name": options.project or project_name(plan), "services": {SERVICE: service}}
    model = with_services(model, options.services, apps=[SERVICE])
    secrets = {}
    if options.ca_secret_file:
        secrets[CA_SECRET] = {"file": options.ca_secret_file}
    secrets.update(compose_secrets(options.secrets))
    if secrets:
        model["secrets"] = secrets
    return model


_HEADER = """\
# Generated by imgtool {version} (`imgtool dev`); regenerate it rather than editing it.
# The dev stack: {app} on {server}'s reload mode, built from the `dev` target of
# {dockerfile} (helper files: .imgtool/assets).
# Start it, and keep it in sync with your edits:
#   docker compose -f <this file> up --build --watch
# Code edits are copied into the running container (develop.watch sync) and the server reloads;
# a change to {deps} rebuilds the image. Published on 127.0.0.1 only. Unlike the
# production stack the root filesystem is writable (the synced code lives there).
"""


def dump(plan: BuildPlan, paths: DevPaths, model: dict) -> str:
    files = dependency_files(plan) or ("the dependency files",)
    header = _HEADER.format(
        version=__version__,
        app=plan.config.app,
        server=plan.server.name,
        dockerfile=os.path.normpath(os.path.join(paths.context, paths.dockerfile))
        if not os.path.isabs(paths.dockerfile)
        else paths.dockerfile,
        deps=", ".join(files),
    )
    return header + yaml_body(model)


# ---- I/O ----


@dataclass(frozen=True)
class DevResult:
    output: str
    project: str
    server: str
    url: str
    dockerfile: str
    watch: list[dict] = field(default_factory=list)
    services: list[str] = field(default_factory=list)


def emit(plan: BuildPlan, output: Path, options: DevOptions, ca_cert: Path | None) -> DevResult:
    """Render the dev Dockerfile and the dev compose file; validate, then write both."""
    from toolkit.render import render_dockerfile

    validate.output_file(output)
    plan = dev_plan(plan)
    paths = dev_paths(plan, output)
    dockerfile = build_dir(output) / f"{plan.server.name}.dev.Dockerfile"
    text = render_dockerfile(plan, str(dockerfile), ca_cert, template=TEMPLATE, secrets=options.secrets)
    model = dev_model(plan, paths, options)
    write_compose(dump(plan, paths, model), output, {dockerfile: text}, plan.assets_context)
    return DevResult(
        output=str(output),
        project=model["name"],
        server=plan.server.name,
        url=f"http://127.0.0.1:{options.port}",
        dockerfile=str(dockerfile),
        watch=model["services"][SERVICE]["develop"]["watch"],
        services=[name for name in model["services"] if name != SERVICE],
    )


def _compose(output: Path, *args: str) -> list[str]:
    return ["docker", "compose", "-f", str(output), *args]


def run(output: Path, quiet_stdout: bool = False) -> int:
    """`docker compose up --build --watch` in the foreground; on Ctrl-C, stop it and take the stack down.

    `down` keeps named volumes (a database's data) and the built image (the next start is cached).
    `quiet_stdout` sends compose's output to stderr (stdout carries JSON).
    """
    try:
        process = subprocess.Popen(
            _compose(output, "up", "--build", "--watch"), stdout=sys.stderr if quiet_stdout else None
        )
    except OSError as exc:
        raise EnvironmentProblem(f"cannot run docker compose ({exc}): install the compose plugin") from None
    interrupted = False
    try:
        code = process.wait()
    except Interrupted:
        interrupted = True
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        subprocess.run(_compose(output, "down", "--remove-orphans"), capture_output=True, timeout=120)
    if interrupted:
        raise Interrupted()
    return code
