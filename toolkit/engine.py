"""The Docker edge: connecting, building with BuildKit, inspecting and cleaning up.

Everything here talks to the engine (Docker SDK) or runs the docker CLI (buildx); the logic
that decides what to build lives in plan.py and render.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from toolkit.assets import docker_arch
from toolkit.containers import LABEL
from toolkit.errors import BuildFailed, EnvironmentProblem, UsageError
from toolkit.indexes import BuildSecret
from toolkit.plan import BuildOptions, BuildPlan, ServerBasePlan, buildx_argv

# Named build contexts and Dockerfile heredocs in the engine's built-in BuildKit; `docker save` as OCI.
MIN_ENGINE = (25, 0)
# `docker compose build` (compose 2.40) refuses older buildx plugins.
MIN_BUILDX = (0, 17)
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
PROVISION_HINT = (
    "install Docker Engine 25+ with the buildx (0.17+) and compose v2 plugins "
    "(from a checkout of imgtool: scripts/provision-docker)"
)


@dataclass(frozen=True)
class Endpoint:
    """The engine the docker CLI talks to, as `docker context inspect` resolves it."""

    context: str
    host: str
    tls_dir: str | None = None
    skip_tls_verify: bool = False


def endpoint_from_inspect(data: dict) -> Endpoint | None:
    """The docker endpoint of one `docker context inspect` entry (None without a docker endpoint)."""
    docker_endpoint = (data.get("Endpoints") or {}).get("docker") or {}
    host = docker_endpoint.get("Host")
    if not host:
        return None
    tls_path = (data.get("Storage") or {}).get("TLSPath")
    tls_dir = str(Path(tls_path) / "docker") if tls_path and (Path(tls_path) / "docker").is_dir() else None
    return Endpoint(
        context=str(data.get("Name") or "default"),
        host=host,
        tls_dir=tls_dir,
        skip_tls_verify=bool(docker_endpoint.get("SkipTLSVerify")),
    )


def current_endpoint(context: str | None = None) -> Endpoint | None:
    """What the docker CLI would use: DOCKER_HOST, else DOCKER_CONTEXT, else the current context
    (or the named `context`, as `docker --context NAME` would).

    Asking the CLI (`docker context inspect` with no name resolves exactly that) keeps the SDK and the
    buildx builds on one engine. None where the CLI cannot say; the SDK then reads the environment.
    """
    selector = ["--context", context] if context else []
    try:
        result = subprocess.run(
            ["docker", *selector, "context", "inspect", "--format", "{{json .}}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return endpoint_from_inspect(json.loads(result.stdout)) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, AttributeError):
        return None


def current_context() -> str | None:
    """The name of the Docker context the CLI uses now (`default` also when DOCKER_HOST decides)."""
    endpoint = current_endpoint()
    return endpoint.context if endpoint else None


def client_kwargs(endpoint: Endpoint) -> dict:
    """DockerClient arguments for an endpoint: its host, its context's TLS files, ssh through the ssh binary."""
    kwargs: dict = {"base_url": endpoint.host}
    if endpoint.host.startswith("ssh://"):
        kwargs["use_ssh_client"] = True
    if endpoint.tls_dir:
        import docker.tls

        tls_dir = Path(endpoint.tls_dir)
        cert, key, ca = tls_dir / "cert.pem", tls_dir / "key.pem", tls_dir / "ca.pem"
        kwargs["tls"] = docker.tls.TLSConfig(
            client_cert=(str(cert), str(key)) if cert.is_file() and key.is_file() else None,
            ca_cert=str(ca) if ca.is_file() else None,
            verify=not endpoint.skip_tls_verify and ca.is_file(),
        )
    return kwargs


def connect(context: str | None = None) -> docker.DockerClient:
    """A client for the engine the docker CLI would use (DOCKER_HOST, DOCKER_CONTEXT, `docker context use`),
    or for the named Docker context's engine.

    DOCKER_HOST is read by the SDK itself, with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH (which a
    context lookup would not carry); only contexts need the CLI's answer.
    """
    from_environment = context is None and bool(os.environ.get("DOCKER_HOST"))
    endpoint = None if from_environment else current_endpoint(context)
    where = f" at {endpoint.host} (context {endpoint.context})" if endpoint else ""
    try:
        if endpoint is None:
            client = docker.from_env(timeout=120)
        else:
            client = docker.DockerClient(timeout=120, **client_kwargs(endpoint))
        client.ping()
    except docker.errors.DockerException as exc:
        reason = str(exc).split("(")[0].strip() or type(exc).__name__
        raise EnvironmentProblem(f"Docker engine unreachable{where} ({reason}): {PROVISION_HINT}") from None
    require_modern_engine(client)
    return client


def cli_version(*args: str) -> str | None:
    """The first line `docker ARGS` prints (e.g. `docker compose version`), or None where it does not answer."""
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = result.stdout.strip().splitlines()
    return lines[0] if result.returncode == 0 and lines else None


def buildx_version() -> str | None:
    """The buildx plugin's version (`0.29.1`), or None where `docker buildx` does not answer."""
    words = (cli_version("buildx", "version") or "").split()
    return words[1].removeprefix("v") if len(words) > 1 else None


def buildx_problem(version: str | None) -> str | None:
    """Why this buildx cannot build imgtool's Dockerfiles (compose 2.40 also refuses buildx < 0.17), or None."""
    floor = ".".join(map(str, MIN_BUILDX))
    if version is None:
        return f"docker buildx is not installed: {PROVISION_HINT}"
    if _version_tuple(version) < MIN_BUILDX:
        return f"docker buildx {version} is too old (need {floor} or newer): {PROVISION_HINT}"
    return None


def require_buildx() -> None:
    problem = buildx_problem(buildx_version())
    if problem:
        raise EnvironmentProblem(problem)


def image_exists(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True


def daemon_arch(client: docker.DockerClient) -> str:
    """The engine's architecture as Docker names platforms (amd64, arm64): the uv the build needs."""
    return docker_arch(client.info().get("Architecture", "x86_64"))


@dataclass(frozen=True)
class Builder:
    """A buildx builder as `docker buildx inspect` describes it."""

    name: str
    driver: str
    # The first node's endpoint: a Docker context's name for the docker driver.
    endpoint: str
    platforms: tuple[str, ...]

    def docker_context(self, current: str | None) -> str | None:
        """The context to build from: a docker-driver builder is a context's engine, and buildx uses it only
        from that context. None where that is the `current` context already, or the driver is another."""
        if self.driver != "docker" or not self.endpoint or self.endpoint == current:
            return None
        return self.endpoint


def parse_builder(name: str, text: str) -> Builder:
    """`docker buildx inspect NAME` output: the driver, the first node's endpoint and platforms (native first)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() in ("Driver", "Endpoint", "Platforms") and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    platforms = tuple(item.strip().rstrip("*") for item in fields.get("Platforms", "").split(",") if item.strip())
    return Builder(name, fields.get("Driver", ""), fields.get("Endpoint", ""), platforms)


def inspect_builder(builder: str) -> Builder:
    """The named buildx builder; an unknown or stopped one is an error naming the fix."""
    try:
        result = subprocess.run(["docker", "buildx", "inspect", builder], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"`docker buildx inspect {builder}` did not answer ({exc}): check buildx") from None
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1].removeprefix("ERROR: ")
        raise UsageError(f"--builder {builder}: {reason}; list the builders with `docker buildx ls`")
    info = parse_builder(builder, result.stdout)
    if not info.platforms:
        raise EnvironmentProblem(
            f"builder {builder} reports no platform (is it running?): `docker buildx inspect --bootstrap {builder}`"
        )
    return info


def require_modern_engine(client: docker.DockerClient) -> str:
    """The engine's version, or an error naming the upgrade when it is older than imgtool supports."""
    version = str(client.version().get("Version", "0"))
    if _version_tuple(version) < MIN_ENGINE:
        floor = ".".join(map(str, MIN_ENGINE))
        raise EnvironmentProblem(
            f"Docker engine {version} is too old (imgtool needs {floor} or newer for named build contexts): "
            "upgrade Docker, or run scripts/provision-docker"
        )
    return version


def _version_tuple(version: str) -> tuple[int, ...]:
    numbers = re.match(r"^v?(\d+)(?:\.(\d+))?", version)
    return tuple(int(part or 0) for part in numbers.groups()) if numbers else (0,)


@dataclass(frozen=True)
class BuildResult:
    server: str
    tag: str
    image_id: str
    # None when the image is not in the engine imgtool talks to (pushed only, or loaded by another builder).
    size_bytes: int | None
    seconds: float
    # The registry's manifest digest of a pushed image (`--push`), or a reproducible build's image
    # manifest digest (the exported OCI image's; a containerd store keeps it on load).
    digest: str | None = None
    builder: str | None = None
    # The SOURCE_DATE_EPOCH a reproducible build pinned.
    epoch: int | None = None
    # One line each: things the build noticed but did not fail on (the import check's warning).
    warnings: list[str] = field(default_factory=list)


# The one-line fix where the docker driver sits on a classic (graph driver) image store.
CONTAINERD_STORE_HINT = (
    'turn on the containerd image store: add {"features": {"containerd-snapshotter": true}} to '
    "/etc/docker/daemon.json and restart dockerd (or use a docker-container buildx builder)"
)


def containerd_store(client: docker.DockerClient) -> bool:
    """Whether images live in containerd's store (`docker info`: driver-type io.containerd.snapshotter.v1)."""
    status = client.info().get("DriverStatus") or []
    return any(len(pair) == 2 and pair[0] == "driver-type" and "containerd" in pair[1] for pair in status)


def buildx_driver() -> str | None:
    """The current buildx builder's driver (docker, docker-container, remote, kubernetes), None if unknown."""
    try:
        result = subprocess.run(["docker", "buildx", "inspect"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_builder("", result.stdout).driver or None


def attestation_problem(client: docker.DockerClient, driver: str | None = None) -> str | None:
    """Why this engine's builder cannot store attestations or export OCI images (with the fix), else None."""
    driver = driver or buildx_driver()
    if driver not in (None, "docker") or containerd_store(client):
        return None
    return f"the docker driver on a classic image store cannot: {CONTAINERD_STORE_HINT}"


def resolve_ca_cert(ca_cert: Path | None) -> Path | None:
    if ca_cert is None:
        return SYSTEM_CA_BUNDLE if SYSTEM_CA_BUNDLE.is_file() else None
    if not ca_cert.is_file():
        raise UsageError(f"--ca-cert {ca_cert} is not a file: pass a PEM bundle")
    return ca_cert.resolve()


@dataclass(frozen=True)
class _Built:
    returncode: int
    image_id: str
    digest: str | None
    seconds: float
    output: list[str]


def _buildx(
    dockerfile: str,
    tag: str,
    context: Path,
    assets_context: Path,
    ca_cert: Path | None,
    flags: tuple[str, ...],
    show_progress: bool,
    docker_context: str | None = None,
    secrets: Sequence[BuildSecret] = (),
    check_env: dict[str, str] | None = None,
) -> _Built:
    """Run `docker buildx build` with the Dockerfile on stdin; the image id, pushed digest and output lines.

    `check_env` reaches the build-time import check as the secret `check-env` (a JSON file that lives
    only as long as the build): never an ARG, ENV or RUN line, so never in a layer or the history.
    """
    with tempfile.TemporaryDirectory(prefix="imgtool-build-") as scratch:
        iidfile, metadata = Path(scratch) / "iid", Path(scratch) / "metadata.json"
        progress = "tty" if show_progress and sys.stderr.isatty() else "plain"
        extra = (*flags, f"--progress={progress}", "--iidfile", str(iidfile), "--metadata-file", str(metadata))
        secret = None
        if check_env:
            secret = Path(scratch) / "check-env.json"
            secret.write_text(json.dumps(check_env))
            secret.chmod(0o600)
        command = buildx_argv(
            tag, context, assets_context, "-", ca_cert, extra, docker_context, secrets=secrets, check_env=secret
        )
        started = time.monotonic()
        output_lines: list[str] = []
        with subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=None if progress == "tty" else subprocess.PIPE,
            text=True,
        ) as process:
            try:
                assert process.stdin is not None
                process.stdin.write(dockerfile)
                process.stdin.close()
                if process.stderr is not None:
                    for line in process.stderr:
                        output_lines.append(line.rstrip("\n"))
                        if show_progress:
                            sys.stderr.write(line)
                process.wait()
            except BaseException:
                process.terminate()
                process.wait()
                raise
        seconds = time.monotonic() - started
        ok = process.returncode == 0
        image_id = iidfile.read_text().strip() if ok and iidfile.is_file() else ""
        digest = pushed_digest(metadata.read_text()) if ok and metadata.is_file() else None
    return _Built(process.returncode, image_id, digest, seconds, output_lines)


def pushed_digest(metadata: str) -> str | None:
    """The manifest (or index) digest buildx's metadata file records for a pushed image."""
    try:
        data = json.loads(metadata)
    except ValueError:
        return None
    digest = data.get("containerimage.digest") if isinstance(data, dict) else None
    return digest if isinstance(digest, str) and digest.startswith("sha256:") else None


def _local_size(client: docker.DockerClient, image_id: str, tag: str) -> int | None:
    """The image's size in the engine imgtool talks to, or None where the build left it elsewhere."""
    for ref in (image_id, tag):
        if not ref:
            continue
        try:
            return int(client.images.get(ref).attrs["Size"])
        except docker.errors.ImageNotFound:
            continue
    return None


def _result(client: docker.DockerClient, server: str, tag: str, built: _Built, options: BuildOptions) -> BuildResult:
    size = _local_size(client, built.image_id, tag)
    if size is None and not (options.push or options.builder):
        raise BuildFailed(f"buildx built {tag} but the engine has no image {built.image_id or tag}: build again")
    return BuildResult(server, tag, built.image_id, size, built.seconds, built.digest, options.builder)


def build_image(
    client: docker.DockerClient,
    plan: BuildPlan | ServerBasePlan,
    dockerfile: str,
    ca_cert: Path | None,
    options: BuildOptions | None = None,
    show_progress: bool = True,
) -> BuildResult:
    """Run `docker buildx build` for an app's image, or a per-server base (`imgtool base build`: it needs
    no files, so its context is an empty directory). Progress goes to the terminal or is kept for the error."""
    options = options or BuildOptions()
    with tempfile.TemporaryDirectory(prefix="imgtool-build-context-") as empty:
        context = plan.config.context if isinstance(plan, BuildPlan) else Path(empty)
        if options.epoch is not None:
            return _build_reproducible(client, plan, context, dockerfile, ca_cert, options, show_progress)
        key = _import_key(plan, options)

        def run(import_key: Path | None) -> _Built:
            named = ("--build-context", f"{IMPORT_KEY_CONTEXT}={import_key}") if import_key else ()
            return _buildx(
                dockerfile,
                plan.tag,
                context,
                plan.assets_context,
                ca_cert,
                (*named, *options.flags(plan.server.name)),
                show_progress,
                options.docker_context,
                options.secrets,
                _check_env(plan),
            )

        built = run(key)
        notes: list[str] = []
        if key is not None and built.returncode != 0:
            # A stub ran at import (the skeleton no longer fits), or a tty build whose output was not kept:
            # once more with the app itself, which reproduces any failure that was not the skeleton's.
            stale = _marked(built.output, IMPORT_STALE_MARKER)
            if stale or not built.output:
                assert isinstance(plan, BuildPlan)
                from toolkit import importkey

                importkey.forget(plan.config.context, plan.config.app)
                key = None
                notes.append(f"{stale or 'the build failed on the import-time skeleton'}: checked the app itself")
                built = run(None)
    _raise_for_build(plan, built)
    if key is None and isinstance(plan, BuildPlan) and _skeleton_applies(plan, options):
        _remember_import_trace(client, plan, built.image_id)
    return dataclasses.replace(
        _result(client, plan.server.name, plan.tag, built, options), warnings=[*notes, *_warnings(plan, built.output)]
    )


# The import check's key (toolkit/importkey.py): a named context that replaces the `import-key` stage.
IMPORT_KEY_CONTEXT = "import-key"
IMPORT_STALE_MARKER = "imgtool-import-stale: "
IMPORT_REPORT = "import-check.json"


def _skeleton_applies(plan: BuildPlan | ServerBasePlan, options: BuildOptions) -> bool:
    """A plain build loaded into this engine, of an app imported from its own directory (not installed wheels)."""
    return (
        isinstance(plan, BuildPlan)
        and not (options.push or options.builder or options.output or options.no_cache)
        and not plan.deps.install_paths
    )


def _import_key(plan: BuildPlan | ServerBasePlan, options: BuildOptions) -> Path | None:
    """The app's import-time skeleton for the import check, when an earlier full check left its trace."""
    if not isinstance(plan, BuildPlan) or not _skeleton_applies(plan, options):
        return None
    from toolkit import importkey

    return importkey.prepare(plan.config.context, plan.config.app, plan.app_dir, plan.config.project_path)


def _remember_import_trace(client: docker.DockerClient, plan: BuildPlan, image_id: str) -> None:
    """Keep what ran at the full import check (the image's report) for the next build's skeleton."""
    from toolkit import importkey

    report = read_image_json(client, image_id, f"{plan.assets_dir}/{IMPORT_REPORT}")
    if report is not None:
        importkey.remember(plan.config.context, plan.config.app, report)


def read_image_json(client: docker.DockerClient, image_id: str, path: str) -> dict | None:
    """A small JSON file from an image's filesystem, read from a created (never started) container."""
    import io
    import tarfile

    if not image_id:
        return None
    try:
        container = client.containers.create(image_id, labels={LABEL: "read-file"})
    except docker.errors.APIError:
        return None
    try:
        stream, _ = container.get_archive(path)
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.next()
            data = archive.extractfile(member) if member is not None else None
            return json.loads(data.read()) if data is not None else None
    except (docker.errors.NotFound, ValueError, tarfile.TarError):
        return None
    finally:
        container.remove(force=True)


def _build_reproducible(
    client: docker.DockerClient,
    plan: BuildPlan | ServerBasePlan,
    context: Path,
    dockerfile: str,
    ca_cert: Path | None,
    options: BuildOptions,
    show_progress: bool,
) -> BuildResult:
    """Export an OCI archive with rewrite-timestamp (the docker exporter cannot: it unpacks), then load it.

    The digest reported is the exported image manifest's; on a containerd store the loaded image keeps it.
    """
    from toolkit.reproducible import oci_digests, oci_output

    with tempfile.TemporaryDirectory(prefix="imgtool-oci-") as scratch:
        archive = Path(scratch) / "image.tar"
        exporting = dataclasses.replace(options, output=("--output", oci_output(archive, plan.tag)))
        built = _buildx(
            dockerfile,
            plan.tag,
            context,
            plan.assets_context,
            ca_cert,
            exporting.flags(plan.server.name),
            show_progress,
            options.docker_context,
            options.secrets,
            _check_env(plan),
        )
        _raise_for_build(plan, built)
        digests = oci_digests(archive)
        started = time.monotonic()
        with archive.open("rb") as stream:
            client.images.load(stream)
        seconds = built.seconds + time.monotonic() - started
    image = client.images.get(plan.tag)
    return BuildResult(
        plan.server.name,
        plan.tag,
        image.id,
        int(image.attrs["Size"]),
        seconds,
        digest=digests.image,
        builder=options.builder,
        epoch=options.epoch,
        warnings=_warnings(plan, built.output),
    )


def _check_env(plan: BuildPlan | ServerBasePlan) -> dict[str, str] | None:
    return plan.config.check_env if isinstance(plan, BuildPlan) else None


def _raise_for_build(plan: BuildPlan | ServerBasePlan, built: _Built) -> None:
    if built.returncode == 0:
        return
    if isinstance(plan, BuildPlan):
        lock_error = _marked(built.output, "imgtool-lock-export: ")
        if lock_error:
            raise UsageError(f"{plan.deps.lock} cannot be installed: {lock_error}")
        import_error = _marked(built.output, "imgtool-import-check: ")
        if import_error and "collectstatic failed" in import_error:
            raise UsageError(
                f"Django's collectstatic failed in the build ({import_error}): fix the settings, or give the "
                "values they need at build time in [tool.imgtool] check-env"
            )
        if import_error:
            raise UsageError(
                f"{plan.config.app} cannot be imported in the image ({import_error}): "
                "fix the app or add the missing dependency"
            )
        runtime_error = _marked(built.output, "imgtool-runtime: ")
        if runtime_error:
            raise UsageError(f"the {plan.runtime} runtime for {plan.tag} cannot be assembled: {runtime_error}")
    if any("Cache export is not supported" in line for line in built.output):
        raise EnvironmentProblem(f"this builder cannot export a registry cache: {CONTAINERD_STORE_HINT}")
    raise BuildFailed(f"building {plan.tag} failed: {_build_error(built.output)}")


def _warnings(plan: BuildPlan | ServerBasePlan, output_lines: list[str]) -> list[str]:
    """The import check's warning, as one line (plain progress only: a tty build shows it in BuildKit's own)."""
    warning = _marked(output_lines, "imgtool-import-check-warning: ")
    if not warning or not isinstance(plan, BuildPlan):
        return []
    return [
        f"{plan.config.app} raised {warning} while importing at build time; built anyway (it may need run-time "
        "settings: pass them to `imgtool test --env`, or set [tool.imgtool] check-env for a real import check)"
    ]


def _marked(lines: list[str], marker: str) -> str | None:
    """The last line the build printed after `marker` (the import check's and lock exporter's one-liners)."""
    found = [line.split(marker, 1)[1].strip() for line in lines if marker in line]
    return found[-1] if found else None


def _build_error(lines: list[str]) -> str:
    errors = [line for line in lines if "ERROR" in line or "error:" in line.lower()]
    chosen = errors[-1] if errors else (lines[-1] if lines else "see the build output above")
    return chosen.split("ERROR:", 1)[-1].strip()[:500]
