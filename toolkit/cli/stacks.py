"""`imgtool compose`, `kube`, `dev` and `bake`: files that run or build the app's images elsewhere."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from toolkit.choices import EndpointMode
from toolkit.cli.apps import app
from toolkit.cli.loading import index_secrets, load_plans, stack_extension, with_index_secrets
from toolkit.cli.options import (
    OUTPUT_FILE,
    AllOpt,
    AppOpt,
    BaseOpt,
    ContextOpt,
    DemoOpt,
    HealthPathOpt,
    JsonOpt,
    NetworkOpt,
    PythonOpt,
    ServerOpt,
    StartPeriodOpt,
    TagOpt,
    WithOpt,
    checked,
    host_port,
    kube_cpus,
    kube_memory,
    kube_minor,
    kube_namespace,
    reload_server,
    replica_count,
    swarm_cpus,
    swarm_memory,
    worker_count,
)
from toolkit.cli.output import notice, out, print_json, say, table
from toolkit.errors import UsageError


@app.command(
    epilog="Examples: imgtool compose --all · imgtool compose -s granian --build -o stack.yaml · "
    "then: docker compose up -d --wait · imgtool compose --swarm --replicas 3 --tag localhost:5000/myapp:{server} "
    "-o stack.yaml, then: docker stack deploy -c stack.yaml myapp"
)
def compose(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Compose file to write (validated first).", parser=OUTPUT_FILE),
    ] = Path("compose.yaml"),
    build_mode: Annotated[
        bool,
        typer.Option(
            "--build/--image",
            help="--image: run the images `imgtool build` made. --build: compose builds them from "
            "Dockerfiles written to .imgtool/ beside the file (needs the default docker build driver).",
        ),
    ] = False,
    port_base: Annotated[
        int,
        typer.Option(
            "--port-base", help="First host port on 127.0.0.1; the rest count up.", callback=checked(host_port)
        ),
    ] = 8001,
    profile: Annotated[
        bool,
        typer.Option("--profile", help="Put each service in a profile named after its server (and 'all')."),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="WEB_CONCURRENCY of every service (default 1; with --swarm: follow the CPU limit).",
            callback=checked(worker_count),
        ),
    ] = None,
    tag: TagOpt = None,
    start_period: StartPeriodOpt = 30,
    swarm: Annotated[
        bool, typer.Option("--swarm", help="A stack file for `docker stack deploy`, with a deploy: section.")
    ] = False,
    replicas: Annotated[
        int | None,
        typer.Option("--replicas", help="Swarm: tasks per service (implies --swarm).", callback=checked(replica_count)),
    ] = None,
    cpus: Annotated[
        str,
        typer.Option("--cpus", help="Swarm: CPU limit per task; the workers follow it.", callback=checked(swarm_cpus)),
    ] = "1",
    memory: Annotated[
        str,
        typer.Option("--memory", help="Swarm: memory limit per task, e.g. 512M.", callback=checked(swarm_memory)),
    ] = "512M",
    endpoint_mode: Annotated[
        EndpointMode,
        typer.Option("--endpoint-mode", help="Swarm: vip (a virtual IP) or dnsrr (DNS round robin, no IPVS needed)."),
    ] = EndpointMode.vip,
    with_services: WithOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a compose file running the app under each server: healthchecks, 127.0.0.1 ports, restarts."""
    from toolkit import compose as stack
    from toolkit import engine
    from toolkit import swarm as swarm_mode
    from toolkit.servers import select_servers

    specs = select_servers(server, all_servers)
    swarm_options = None
    if swarm or replicas is not None:
        if build_mode:
            raise UsageError("--swarm runs images from a registry: emit it without --build (push them first)")
        if with_services:
            raise UsageError("--with adds services to the local stack only: deploy backing services as their own stack")
        replicas = swarm_mode.DEFAULT_REPLICAS if replicas is None else replicas
        swarm_options = swarm_mode.SwarmOptions(replicas, cpus, memory, endpoint_mode)
    else:
        stack.check_ports(port_base, len(specs))
    client, plans = load_plans(
        server, all_servers, app_ref, context, base, python, tag, demo=demo, health_path=health_path
    )
    extend = stack_extension(with_services)
    for plan in plans:
        if plan.server.deprecation:
            notice(plan.server.deprecation)
    if swarm_options is not None:
        result = swarm_mode.emit(
            client, plans, output, swarm_options, workers=workers, start_period=start_period, notice=notice
        )
    else:
        ca = engine.resolve_ca_cert(None) if build_mode else None
        if build_mode:
            extend = with_index_secrets(extend, index_secrets(plans[0].config.indexes))
        result = stack.emit(
            client,
            plans,
            output,
            port_base=port_base,
            build=build_mode,
            profiles=profile,
            workers=workers,
            ca_cert=ca,
            notice=notice,
            start_period=start_period,
            extend=extend,
        )
    if as_json:
        print_json(asdict(result))
        return
    if swarm_options is not None:
        rows = [(service.server, service.url, service.image or "-") for service in result.services]
        columns = ("service", "on the stack's network", "image")
        out.print(table(f"imgtool compose --swarm: {result.output}", columns, rows, overflow="fold"))
        say(f"wrote {result.output}; deploy it: docker stack deploy --detach=false -c {result.output} STACK")
        return
    rows = [
        (service.server, f"{service.url}/", service.image or service.dockerfile or "-") for service in result.services
    ]
    columns = ("service", "url", "image" if result.mode == "image" else "dockerfile")
    out.print(table(f"imgtool compose: {result.output} ({result.mode} mode, project {result.project})", columns, rows))
    selector = " --profile all" if result.profiles else ""
    say(f"wrote {result.output}; start it: docker compose -f {result.output}{selector} up -d --wait")


@app.command(
    epilog="Examples: imgtool kube --tag localhost:5000/myapp:{server} · "
    "imgtool kube -s granian --replicas 3 --max-replicas 10 --cpus 2 --memory 1Gi -o app.k8s.yaml · "
    "then: kubectl apply -f k8s.yaml"
)
def kube(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Manifest file to write (validated first).", parser=OUTPUT_FILE),
    ] = Path("k8s.yaml"),
    tag: TagOpt = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Namespace (created, restricted; default: the app's name).",
            callback=checked(kube_namespace),
        ),
    ] = None,
    replicas: Annotated[
        int,
        typer.Option("--replicas", help="Pods per server (the HPA's minimum).", callback=checked(replica_count)),
    ] = 2,
    max_replicas: Annotated[
        int | None,
        typer.Option(
            "--max-replicas",
            help="Add a HorizontalPodAutoscaler up to this many pods.",
            callback=checked(replica_count),
        ),
    ] = None,
    cpus: Annotated[
        str,
        typer.Option(
            "--cpus", help="CPU request = limit per pod (e.g. 1, 500m); workers follow.", callback=checked(kube_cpus)
        ),
    ] = "1",
    memory: Annotated[
        str,
        typer.Option("--memory", help="Memory request = limit per pod (e.g. 512Mi).", callback=checked(kube_memory)),
    ] = "512Mi",
    kube_version: Annotated[
        str,
        typer.Option(
            "--kube-version",
            help="Oldest Kubernetes it must run on; validated against its schema.",
            callback=checked(kube_minor),
        ),
    ] = "1.30",
    start_period: StartPeriodOpt = 30,
    as_json: JsonOpt = False,
) -> None:
    """Write Kubernetes manifests from the image's contract: Deployment, Service, PodDisruptionBudget, NetworkPolicy."""
    from toolkit import kube as k8s
    from toolkit.refs import image_refs

    options = k8s.KubeOptions(
        namespace=namespace,
        replicas=replicas,
        cpus=cpus,
        memory=memory,
        max_replicas=max_replicas,
        kube_version=kube_version,
        start_period=start_period,
    )
    k8s.check_options(options)
    client, plans = load_plans(server, all_servers, app_ref, context, base, python, tag)
    objects = k8s.manifests(plans, image_refs(client, plans, notice, cluster=True), options)
    checked = k8s.emit(objects, output, kube_version)
    if not checked:
        notice("not checked against the Kubernetes schemas: pip install 'imgtool[kube]' (kubernetes-validate)")
    kinds = [f"{obj['kind']}/{obj['metadata']['name']}" for obj in objects]
    if as_json:
        print_json({"output": str(output), "objects": kinds, "schema_checked": checked, "kube_version": kube_version})
        return
    for kind in kinds:
        out.print(kind, highlight=False, markup=False)
    checked_note = f", valid for Kubernetes {kube_version}" if checked else ""
    say(f"wrote {output}{checked_note}; apply it: kubectl apply -f {output}")


@app.command(
    epilog="Examples: imgtool dev · imgtool dev --context ~/src/myproject --with postgres · "
    "imgtool dev --no-up -o compose.dev.yaml, then: docker compose -f compose.dev.yaml up --build --watch"
)
def dev(
    server: Annotated[
        str,
        typer.Option(
            "--server",
            "-s",
            help="Server whose reload mode serves the app: uvicorn, granian, hypercorn.",
            callback=checked(reload_server),
        ),
    ] = "uvicorn",
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="The dev compose file to write (validated first).", parser=OUTPUT_FILE),
    ] = Path("compose.dev.yaml"),
    port: Annotated[int, typer.Option("--port", help="Host port on 127.0.0.1.", callback=checked(host_port))] = 8000,
    with_services: WithOpt = None,
    network: NetworkOpt = None,
    up: Annotated[
        bool, typer.Option("--up/--no-up", help="--no-up: write the files only (start later with compose).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Run the app with hot reload: a dev image served by the server's reload mode, under Compose Watch.

    Edits are copied into the running container (no rebuild) and the server reloads; a change to a
    dependency file rebuilds the image. Ctrl-C stops the stack (volumes and the image are kept).
    """
    from toolkit import dev as devmode
    from toolkit import engine
    from toolkit.services import parse_with

    selected = tuple(parse_with(with_services))
    ca = engine.resolve_ca_cert(None)
    engine.require_buildx()
    _, plans = load_plans([server], False, app_ref, context, base, python)
    options = devmode.DevOptions(
        port=port,
        network=network.value if network else None,
        ca_secret_file=str(ca) if ca else None,
        secrets=index_secrets(plans[0].config.indexes),
        services=selected,
    )
    result = devmode.emit(plans[0], output, options, ca)
    if as_json:
        print_json(asdict(result))
    else:
        say(f"wrote {result.output} and {result.dockerfile}; {result.server} --reload on {result.url}/")
    if not up:
        say(f"start it: docker compose -f {result.output} up --build --watch")
        return
    code = devmode.run(output, quiet_stdout=as_json)
    if code != 0:
        raise typer.Exit(1)


@app.command(epilog="Examples: imgtool bake --all · then: docker buildx bake -f docker-bake.hcl granian")
def bake(
    server: ServerOpt = None,
    all_servers: AllOpt = False,
    app_ref: AppOpt = None,
    context: ContextOpt = None,
    demo: DemoOpt = False,
    health_path: HealthPathOpt = None,
    base: BaseOpt = None,
    python: PythonOpt = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Bake file to write.", parser=OUTPUT_FILE)] = Path(
        "docker-bake.hcl"
    ),
    as_json: JsonOpt = False,
) -> None:
    """Write a docker-bake.hcl with a target per server (Dockerfiles beside it under .imgtool/)."""
    from toolkit import buildfiles, engine, scaffold

    _, plans = load_plans(server, all_servers, app_ref, context, base, python, demo=demo, health_path=health_path)
    text, dockerfiles = scaffold.bake_file(plans, output, engine.resolve_ca_cert(None))
    buildfiles.write(output, text, dockerfiles, plans[0].assets_context)
    if as_json:
        print_json({"output": str(output), "targets": [plan.server.name for plan in plans]})
        return
    command = next(line for line in text.splitlines() if line.startswith("#   docker buildx bake"))
    say(f"wrote {output}; build it from {output.parent}: {command.removeprefix('#   ')}")
