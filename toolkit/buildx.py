"""Building a plan's image with `docker buildx build`: the command, the import-check skeleton, the result.

Any builder: the current Docker context's engine (loaded into it), another buildx builder, or a push to a
registry; a reproducible build exports OCI with rewritten timestamps and loads it. A failed build is one
line naming the cause (BuildFailed, or UsageError where the app or its settings are at fault).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from toolkit.containers import LABEL

# Named build contexts and Dockerfile heredocs in the engine's built-in BuildKit; `docker save` as OCI.
from toolkit.engine import CONTAINERD_STORE_HINT
from toolkit.errors import BuildFailed, EnvironmentProblem, UsageError
from toolkit.indexes import BuildSecret
from toolkit.plan import BuildOptions, BuildPlan, ServerBasePlan, buildx_argv


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
        _result(client, plan.server.name, plan.tag, built, options),
        warnings=[*notes, *_warnings(plan, built.output, lambda: _reported_warning(client, plan, built.image_id))],
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
        if import_error and import_error.startswith("InterfaceError: "):
            # The check's line says what to fix (the interface to set, or where --app should point).
            raise UsageError(import_error.removeprefix("InterfaceError: "))
        if import_error:
            loading = import_error.startswith(("ModuleNotFoundError", "ImportError", "SyntaxError", "IndentationError"))
            fix = "fix the app or add the missing dependency"
            if not loading:
                fix = "fix the app; if it stopped for a setting, give the check a value in [tool.imgtool] check-env"
            raise UsageError(f"{plan.config.app} cannot be imported in the image ({import_error}): {fix}")
        runtime_error = _marked(built.output, "imgtool-runtime: ")
        if runtime_error:
            raise UsageError(f"the {plan.runtime} runtime for {plan.tag} cannot be assembled: {runtime_error}")
    if any("Cache export is not supported" in line for line in built.output):
        raise EnvironmentProblem(f"this builder cannot export a registry cache: {CONTAINERD_STORE_HINT}")
    raise BuildFailed(f"building {plan.tag} failed: {_build_error(built.output)}")


def _reported_warning(client: docker.DockerClient, plan: BuildPlan | ServerBasePlan, image_id: str) -> str | None:
    """The warning the import check recorded in the image's report (a cached check prints nothing)."""
    if not isinstance(plan, BuildPlan):
        return None
    report = read_image_json(client, image_id, f"{plan.assets_dir}/{IMPORT_REPORT}")
    return (report or {}).get("warning")


def _warnings(plan: BuildPlan | ServerBasePlan, output_lines: list[str], reported=lambda: None) -> list[str]:
    """The import check's warning, as one line (plain progress only: a tty build shows it in BuildKit's own).

    When the check's result came from BuildKit's cache its output is not shown: `reported()` reads the warning
    the check wrote into the image's report."""
    warning = _marked(output_lines, "imgtool-import-check-warning: ")
    if not warning and isinstance(plan, BuildPlan) and not _marked(output_lines, "imgtool-import-check-ok: "):
        warning = reported()
    if not warning or not isinstance(plan, BuildPlan):
        return []
    return [
        f"{plan.config.app} raised {warning} while importing at build time; built anyway (it needs run-time "
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
