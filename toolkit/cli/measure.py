"""`imgtool test` and `imgtool bench`: run images, prove every protocol their server claims, measure them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from toolkit import validate
from toolkit.bench.choices import Generator, Via
from toolkit.cli.apps import app
from toolkit.cli.loading import images_to_run
from toolkit.cli.options import (
    OUTPUT_FILE,
    AllOpt,
    AppOpt,
    ContextOpt,
    DemoOpt,
    HealthPathOpt,
    ImageOpt,
    JsonOpt,
    ServerOpt,
    checked,
    connection_count,
    duration_seconds,
)
from toolkit.cli.output import err, out, print_json
from toolkit.servers import Protocol
from toolkit.smoke.model import Check


@app.command(
    "test",
    epilog="Examples: cd myproject && imgtool test --server granian --env SECRET_KEY=x · imgtool test --demo --all "
    "--junit report.xml · imgtool test --image myapp:latest --protocol http1 --health-path /healthz",
)
def test_images(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    image: ImageOpt = None,
    protocol: Annotated[
        list[Protocol] | None, typer.Option("--protocol", "-p", help="Protocols to check (repeatable).")
    ] = None,
    check: Annotated[
        list[Check] | None, typer.Option("--check", "-c", help="Run only these checks (repeatable; default all).")
    ] = None,
    health_path: Annotated[
        str | None,
        typer.Option(
            "--health-path",
            help="Route that must answer 2xx, also what the image's HEALTHCHECK asks (default: the image's label, "
            "else any answer below 500 at /).",
            callback=checked(validate.url_path),
        ),
    ] = None,
    ws_path: Annotated[
        str | None,
        typer.Option(
            "--ws-path",
            help="WebSocket route the ws check opens (default: the image's label, else the WebSocket routes "
            "in the app's own route table).",
            callback=checked(validate.url_path),
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Container port (default: label or 8000).", callback=checked(validate.port)),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env", "-e", help="KEY=VALUE for the containers (repeatable).", callback=checked(validate.env_pair)
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", help="Seconds to wait for healthy.", callback=checked(validate.positive_seconds)),
    ] = 20.0,
    junit_file: Annotated[
        Path | None, typer.Option("--junit", help="Also write a JUnit XML report.", parser=OUTPUT_FILE)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run each image and prove health and every protocol its server claims; exit 1 on any failure."""
    from toolkit import engine
    from toolkit.containers import current_run_id
    from toolkit.files import write_text_atomic
    from toolkit.smoke import Report, select_checks
    from toolkit.smoke import report as render
    from toolkit.smoke.runner import Runner, describe_image

    refs = images_to_run(image, server, all_servers, context, app_ref, demo)
    protocols = [str(name) for name in protocol or []]
    selected = select_checks([str(name) for name in check or []], protocols)
    client = engine.connect()
    images = [describe_image(client, ref, health_path, port, protocols, dict(env or []), ws_path) for ref in refs]
    report = Report()
    with Runner(client, current_run_id(), timeout=timeout) as runner, err.status("starting") as status:
        for subject in images:
            report.servers.append(
                runner.run(subject, selected, lambda step, name=subject.name: status.update(f"{name}: {step}"))
            )
    if junit_file is not None:
        write_text_atomic(junit_file, render.junit(report))
    if as_json:
        print_json(render.as_dict(report))
    else:
        out.print(render.table(report))
        for line in render.notes(report):
            out.print(f"[dim]{line}[/]", highlight=False)
        for line in render.failures(report):
            out.print(line, highlight=False, markup=False)
    if report.failed:
        raise typer.Exit(1)


@app.command(
    epilog="Examples: imgtool bench --all · imgtool bench --server granian --duration 5s --json · "
    "imgtool bench --image myapp:latest --plot bench.png"
)
def bench(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    image: ImageOpt = None,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            "-d",
            help="Load time per protocol, 1s to 10m: 10s, 1500ms, 1m.",
            parser=duration_seconds,
            metavar="DURATION",
        ),
    ] = "10s",
    connections: Annotated[
        int,
        typer.Option(
            "--connections",
            "-c",
            help="Concurrent connections, 1 to 256 (h2c: streams).",
            callback=checked(connection_count),
        ),
    ] = 32,
    via: Annotated[
        Via,
        typer.Option(
            "--via",
            help="bridge: load the container's own address (default); published: its 127.0.0.1 port "
            "through Docker's userland proxy.",
        ),
    ] = Via.bridge,
    path: Annotated[str, typer.Option("--path", help="Route to load.", callback=checked(validate.url_path))] = "/",
    generator: Annotated[
        Generator, typer.Option("--generator", help="auto (wrk/h2load when installed), wrk, or httpx (built in).")
    ] = Generator.auto,
    plot_file: Annotated[
        Path | None, typer.Option("--plot", help="Also write a PNG bar chart (matplotlib).", parser=OUTPUT_FILE)
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Load each image (server on CPU 0, load on CPU 1): req/s, p50/p99, errors, size, time-to-healthy, RSS."""
    from toolkit import bench as b
    from toolkit import engine
    from toolkit.containers import current_run_id
    from toolkit.files import write_atomic

    if plot_file is not None:
        b.require_matplotlib()
    generators = b.pick_generators(generator)
    refs = images_to_run(image, server, all_servers, context, app_ref, demo)
    client = engine.connect()
    subjects = [b.subject_for(client, ref, health_path) for ref in refs]
    cpus = b.load_cpus()
    report = b.BenchReport(
        duration_seconds=duration,
        connections=connections,
        path=path,
        generators={k: v for k, v in generators.items() if k == "http1" or any(s.h2c for s in subjects)},
        server_cpus=b.SERVER_CPUS,
        load_cpus=",".join(map(str, sorted(cpus))) if cpus else "any",
        run_id=current_run_id(),
    )
    with b.Bench(client, report.run_id, via) as runner, err.status("starting") as status:
        for subject in subjects:
            status.update(f"{subject.name}: starting, then {duration:g} s of load per protocol")
            report.results.append(runner.measure(subject, generators, duration, connections, path))
    if plot_file is not None:
        write_atomic(plot_file, b.plot(report))
    if as_json:
        print_json(report.as_dict())
    else:
        shown = Table(title="imgtool bench")
        for column in b.TABLE_COLUMNS:
            shown.add_column(column, justify="left" if column == "server" else "right")
        for row in b.table_rows(report):
            shown.add_row(*row)
        out.print(shown)
        out.print(b.describe_generators(report), highlight=False, markup=False)
        for result in report.results:
            if result.error:
                out.print(f"{result.name}: {result.error}", highlight=False, markup=False)
        if plot_file is not None:
            out.print(f"wrote {plot_file}", highlight=False)
    if report.failed:
        raise typer.Exit(1)
