"""`imgtool config`, `init`, `doctor` and `workflow`: the project's settings, its scaffolding, the machine, CI."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from toolkit import validate
from toolkit.cli.apps import app
from toolkit.cli.options import (
    DIRECTORY,
    OUTPUT_TREE,
    AppOpt,
    BaseOpt,
    ContextOpt,
    DemoOpt,
    HealthPathOpt,
    JsonOpt,
    PythonOpt,
    ServerOpt,
    checked,
)
from toolkit.cli.output import out, print_json, say, table


@app.command(
    epilog="Examples: imgtool workflow · imgtool workflow --context app -s granian -s uvicorn "
    "-o .github/workflows/images.yml --force"
)
def workflow(
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Workflow file to write (never replaced without --force).", parser=OUTPUT_TREE
        ),
    ] = Path(".github/workflows/images.yml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing workflow file.")] = False,
    context: Annotated[
        str,
        typer.Option(
            "--context",
            help="The app's build context, relative to the repository root.",
            callback=checked(validate.relative_path),
        ),
    ] = ".",
    server: ServerOpt = None,
    python: Annotated[
        list[str] | None,
        typer.Option(
            "--python",
            help="Python X.Y to build for (repeatable; default 3.11, 3.12).",
            callback=checked(validate.python_version),
        ),
    ] = None,
    install: Annotated[
        str | None,
        typer.Option(
            "--install",
            help="pip arguments that install imgtool on the runner.",
            callback=checked(validate.pip_arguments),
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a GitHub Actions workflow: build, smoke-test, then push multi-arch images with SBOM and provenance."""
    from toolkit.workflow import PYTHONS, render_workflow, write_workflow

    pythons = tuple(python) if python else PYTHONS
    text = render_workflow(context=context, install=install, servers=tuple(server) if server else None, pythons=pythons)
    written = write_workflow(output, text, force)
    if as_json:
        print_json({"output": str(written), "servers": server or "all", "pythons": list(pythons)})
        return
    say(f"wrote {written}; commit it, then each push builds, tests and publishes to ghcr.io")


@app.command("config", epilog="Examples: imgtool config · imgtool config --context ~/src/myproject --json")
def show_config(
    server: ServerOpt = None,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    base: BaseOpt = None,
    python: PythonOpt = None,
    health_path: HealthPathOpt = None,
    port: Annotated[int | None, typer.Option("--port", help="Container port.", callback=checked(validate.port))] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the settings a build would use: defaults < \\[tool.imgtool] < flags, and where each came from."""
    from rich.markup import escape

    from toolkit.config import describe_config, load_config
    from toolkit.servers import select_servers

    config = load_config(context, app_ref, python, base, health_path, port, demo=demo)
    servers = tuple(spec.name for spec in select_servers(server, False, config.servers))
    origin = "flag" if server else config.origins.get("servers", "default")
    rows = describe_config(config, servers, origin)
    if as_json:
        settings = {key: {"value": value, "from": origin} for key, value, origin in rows}
        print_json({"context": str(config.project_dir), "settings": settings})
        return
    shown = [
        (escape(key), escape(json.dumps(value) if isinstance(value, dict | list) else str(value)), escape(source))
        for key, value, source in rows
    ]
    out.print(table(f"imgtool config: {config.project_dir}", ("setting", "value", "from"), shown))


@app.command(epilog="Examples: imgtool init · imgtool init --context ~/src/myproject --server uvicorn --force")
def init(
    context: ContextOpt = None,
    server: ServerOpt = None,
    app_ref: AppOpt = None,
    health_path: HealthPathOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing \\[tool.imgtool] and .dockerignore.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write \\[tool.imgtool] into pyproject.toml and a Python .dockerignore; never overwrite without --force."""
    from toolkit import scaffold
    from toolkit.config import load_config
    from toolkit.servers import select_servers

    config = load_config(context=context, app=app_ref, health_path=health_path)
    servers = [spec.name for spec in select_servers(server, False, config.servers)]
    table = scaffold.tool_table(config.app, servers, config.health_path, config.port)
    changes = scaffold.plan_init(config.project_dir, table, force)
    scaffold.apply(changes)
    if as_json:
        print_json([{"path": str(change.path), "action": change.action} for change in changes])
        return
    for change in changes:
        hint = " (exists and differs; --force replaces it)" if change.action == "kept" else ""
        say(f"{change.action:9} {change.path}{hint}")


@app.command(epilog="Examples: imgtool doctor · imgtool doctor --json")
def doctor(
    python: PythonOpt = None,
    context: Annotated[
        Path | None,
        typer.Option(
            "--context", help="Project whose imgtool.lock decides the base path (default: .).", parser=DIRECTORY
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check engine, buildx, compose, base image and disk space: each line ok or the fix; exit 2 if unusable."""
    from rich.markup import escape

    from toolkit.doctor import diagnose, usable

    findings = diagnose(python or "3.11", context)
    ok = usable(findings)
    if as_json:
        print_json({"usable": ok, "checks": [asdict(finding) for finding in findings]})
    else:
        for finding in findings:
            status = "[green]ok [/]" if finding.ok else ("[red]fix[/]" if finding.required else "[yellow]fix[/]")
            out.print(f"{status}  {finding.name:8} {escape(finding.detail)}", highlight=False)
        out.print("usable: builds and tests can run" if ok else "not usable yet: fix the lines marked fix")
    if not ok:
        raise typer.Exit(2)
