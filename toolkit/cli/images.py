"""`imgtool servers`, `render` and `build`: what the images are, their Dockerfiles, and the images themselves."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.apps import app
from toolkit.cli.loading import index_secrets, load_plans
from toolkit.cli.options import (
    OUTPUT_FILE,
    OUTPUT_TEMPLATE,
    AllOpt,
    AppOpt,
    BaseOpt,
    CaCertOpt,
    ContextOpt,
    DemoOpt,
    HealthPathOpt,
    InterfaceOpt,
    JsonOpt,
    NetworkOpt,
    NoCacheOpt,
    PythonOpt,
    ServerOpt,
    builder_name,
    cache_spec,
    checked,
    server_name,
    tag_template,
)
from toolkit.cli.output import err, notice, out, print_json, say, table
from toolkit.errors import EnvironmentProblem


@app.command(epilog="Example: imgtool servers --json")
def servers(as_json: JsonOpt = False) -> None:
    """List the servers imgtool builds, the interfaces (ASGI, WSGI) each serves, their protocols and commands."""
    from toolkit.servers import SERVERS

    if as_json:
        print_json(
            [
                {
                    "name": spec.name,
                    "summary": spec.summary,
                    "interfaces": list(spec.interfaces),
                    "wsgi": _wsgi_json(spec),
                    "packages": list(spec.packages),
                    "protocols": sorted(spec.protocols),
                    "lifespan": spec.lifespan,
                    "without_lifespan": spec.without_lifespan,
                    "graceful": spec.graceful,
                    "command": list(spec.command),
                    "limitations": spec.limitations,
                    "deprecation": spec.deprecation,
                }
                for spec in SERVERS.values()
            ]
        )
        return
    rows = [
        (
            f"{served.name} [dim](legacy)[/]" if served.deprecation else served.name,
            served.interface.upper(),
            "\n".join(served.packages),
            ", ".join(sorted(served.protocols)),
            "yes" if served.lifespan else "no",
            "yes" if served.graceful else "no",
            " ".join(served.command),
        )
        for spec in SERVERS.values()
        for served in (spec.serving(interface) for interface in spec.interfaces)
    ]
    out.print(
        table(
            "Servers (one row per interface served; uvicorn and daphne serve ASGI only)",
            ("server", "interface", "packages", "protocols", "lifespan", "graceful", "command"),
            rows,
        )
    )


def _wsgi_json(spec) -> dict | None:
    """The server's WSGI setup for `imgtool servers --json`, or why it has none."""
    if "wsgi" not in spec.interfaces:
        return {"served": False, "reason": spec.no_wsgi}
    served = spec.serving("wsgi")
    return {
        "served": True,
        "summary": served.summary,
        "packages": list(served.packages),
        "protocols": sorted(served.protocols),
        "command": list(served.command),
        "limitations": served.limitations,
    }


@app.command(epilog="Example: imgtool render --server granian -o Dockerfile")
def render(
    server: Annotated[
        str, typer.Option("--server", "-s", help="Server to render for.", callback=checked(server_name))
    ] = "granian",
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    interface: InterfaceOpt = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.", parser=OUTPUT_FILE)
    ] = None,
) -> None:
    """Print the Dockerfile that `imgtool build` would use; its header names the buildx command that builds it."""
    from toolkit import engine
    from toolkit.files import write_text_atomic
    from toolkit.render import render_dockerfile

    _, plans = load_plans(
        [server], False, app_ref, context, base, python, demo=demo, health_path=health_path, interface=interface
    )
    text = render_dockerfile(plans[0], str(output.resolve()) if output else "Dockerfile", engine.resolve_ca_cert(None))
    if output is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(output, text)
        say(f"wrote {output}")


@app.command(
    help="Build a multi-stage image of the project in the current directory for each server.\n\n"
    "On the current Docker context's engine (DOCKER_HOST, DOCKER_CONTEXT, `docker context use`) or any buildx "
    "builder (--builder); --push and a registry cache (--cache-to/--cache-from) take the image and the cache "
    "to other machines.",
    epilog="Examples: cd myproject && imgtool build --server granian · imgtool build --demo --all --json · "
    "imgtool build --push --tag localhost:5000/myapp:{server} --cache-to localhost:5000/myapp-cache:{server}",
)
def build(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    tag: Annotated[
        str | None,
        typer.Option(
            "--tag",
            "-t",
            help="Image tag; with several servers it must contain {server}.",
            callback=checked(tag_template),
        ),
    ] = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    interface: InterfaceOpt = None,
    no_cache: NoCacheOpt = False,
    ca_cert: CaCertOpt = None,
    frozen: Annotated[
        bool, typer.Option("--frozen", help="Build only on the bases in imgtool.lock; fail if it is missing or stale.")
    ] = False,
    sbom: Annotated[
        Path | None,
        typer.Option(
            "--sbom",
            help="Also write the image's CycloneDX SBOM (it is in every image at /opt/imgtool/sbom.cdx.json) "
            "to FILE; with several servers FILE must contain {server}.",
            parser=OUTPUT_TEMPLATE,
        ),
    ] = None,
    provenance: Annotated[
        bool,
        typer.Option(
            "--provenance",
            help="Attach SLSA provenance (mode=max); needs the containerd image store or a non-docker buildx "
            "driver (`imgtool doctor` says how).",
        ),
    ] = False,
    reproducible: Annotated[
        bool,
        typer.Option(
            "--reproducible",
            help="Byte-for-byte reproducible: SOURCE_DATE_EPOCH from the last commit (or the newest file), an OCI "
            "export with rewrite-timestamp, then loaded; prints the image manifest digest.",
        ),
    ] = False,
    builder: Annotated[
        str | None,
        typer.Option(
            "--builder",
            help="Any buildx builder (`docker buildx ls`); default: the current Docker context's engine.",
            callback=checked(builder_name),
        ),
    ] = None,
    push: Annotated[
        bool, typer.Option("--push", help="Push to the registry the tag names (instead of loading into the engine).")
    ] = False,
    cache_to: Annotated[
        list[str] | None,
        typer.Option(
            "--cache-to",
            help="Export the build cache (repeatable): buildx syntax, or a registry ref for "
            "type=registry,mode=max; {server} is replaced.",
            callback=checked(cache_spec),
        ),
    ] = None,
    cache_from: Annotated[
        list[str] | None,
        typer.Option(
            "--cache-from",
            help="Import a build cache (repeatable): buildx syntax or a registry ref.",
            callback=checked(cache_spec),
        ),
    ] = None,
    network: NetworkOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a multi-stage image of the project in the current directory for each server (default: granian)."""
    from toolkit import buildx, engine
    from toolkit.files import write_atomic
    from toolkit.plan import BuildOptions, check_build_options
    from toolkit.render import render_dockerfile

    ca = engine.resolve_ca_cert(ca_cert)
    engine.require_buildx()
    chosen = engine.inspect_builder(builder) if builder else None
    options = BuildOptions(
        builder=builder,
        push=push,
        cache_to=tuple(cache_to or ()),
        cache_from=tuple(cache_from or ()),
        network=network.value if network else None,
        no_cache=no_cache,
        docker_context=chosen.docker_context(engine.current_context()) if chosen else None,
        provenance=provenance,
        epoch=0 if reproducible else None,
    )
    check_build_options(options, [], several=False)
    client, plans = load_plans(
        server, all_servers, app_ref, context, base, python, tag, frozen, chosen, demo, health_path, interface
    )
    check_build_options(options, [plan.tag for plan in plans], several=len(plans) > 1)
    sbom_files = {}
    if sbom is not None:
        from toolkit.sbom import output_path

        sbom_files = {plan.server.name: output_path(sbom, plan.server.name, len(plans) > 1) for plan in plans}
    if (provenance or reproducible) and not builder:
        problem = engine.attestation_problem(client)
        if problem:
            wanted = " and ".join(
                name for name, on in (("--provenance", provenance), ("--reproducible", reproducible)) if on
            )
            raise EnvironmentProblem(f"{wanted}: {problem}")
    if reproducible:
        from toolkit.reproducible import source_date_epoch

        epoch = source_date_epoch(plans[0].config.context)
        options = dataclasses.replace(options, epoch=epoch.seconds)
        if not as_json:
            say(f"SOURCE_DATE_EPOCH={epoch.seconds}: {epoch.source}")
    options = dataclasses.replace(options, secrets=tuple(index_secrets(plans[0].config.indexes)))
    results = []
    sboms = {}
    for plan in plans:
        if plan.server.deprecation:
            notice(plan.server.deprecation)
        if not as_json:
            where = f" with builder {builder}" if builder else ""
            err.print(f"[bold]building[/] {plan.tag} on {plan.base.ref}{where}", highlight=False)
        dockerfile = render_dockerfile(plan, "-", ca, secrets=options.secrets)
        result = buildx.build_image(client, plan, dockerfile, ca, options, show_progress=not as_json)
        for warning in result.warnings:
            notice(warning)
        results.append(result)
        if plan.server.name in sbom_files:
            from toolkit import sbom as sbom_module

            data = sbom_module.read_from_image(client, result.image_id)
            write_atomic(sbom_files[plan.server.name], data)
            sboms[plan.server.name] = {"file": str(sbom_files[plan.server.name]), **sbom_module.summary(data)}
    if as_json:
        print_json(
            [
                {**asdict(result), **({"sbom": sboms[result.server]} if result.server in sboms else {})}
                for result in results
            ]
        )
        return
    digest_column = "pushed digest" if push else "digest" if reproducible else None
    columns = ["server", "tag", "image id", "size", "time"] + ([digest_column] if digest_column else [])
    rows = []
    for result in results:
        elsewhere = f"- (in {builder or 'the registry'})"
        size = f"{result.size_bytes / 1e6:.0f} MB" if result.size_bytes is not None else elsewhere
        row = [result.server, result.tag, result.image_id.removeprefix("sha256:")[:12], size, f"{result.seconds:.1f} s"]
        rows.append([*row, *([result.digest or "-"] if digest_column else [])])
    out.print(table("imgtool build", columns, rows, overflow="fold"))
    for name, info in sboms.items():
        say(
            f"sbom: {info['file']} ({name}: {info['components']} components, {info['python']} Python, "
            f"{info['debian']} Debian packages)"
        )
