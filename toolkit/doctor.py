"""`imgtool doctor`: can this machine build and test images? One line per piece, each ok or what to fix."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from toolkit.engine import PROVISION_HINT, cli_version

# Below this much free space under Docker's root, a build of a few images can fail half-way.
MIN_FREE_GB = 5.0


@dataclass(frozen=True)
class Finding:
    name: str
    ok: bool
    detail: str  # what was found, or the problem and its fix
    required: bool = True  # False: only some commands need it (compose)


def base_path(client, python: str, context: Path) -> Finding:
    """Which base builds in `context` use: per-server bases from imgtool.lock, the published image, or offline."""
    from toolkit import engine
    from toolkit.base import official_base
    from toolkit.errors import UsageError
    from toolkit.lock import lock_path, read_lock
    from toolkit.pythons import offline_python

    try:
        lock = read_lock(context)
    except UsageError as exc:
        return Finding("basepath", False, str(exc), required=False)
    if lock is not None and lock.bases:
        local = sum(engine.image_exists(client, f"{e.repository}@{e.digest}") for e in lock.bases.values())
        return Finding(
            "basepath",
            True,
            f"per-server bases from {lock_path(context)}: {', '.join(sorted(lock.bases))} "
            f"({local} of {len(lock.bases)} present, the rest are pulled by digest)",
            required=False,
        )
    official = official_base(python)
    if engine.image_exists(client, official):
        return Finding("basepath", True, f"published Python image {official}", required=False)
    offline = offline_python(python)
    if offline is not None and engine.image_exists(client, offline.image):
        return Finding("basepath", True, f"offline bootstrap {offline.image} (no {official})", required=False)
    return Finding("basepath", False, "no base to build on yet: see the base line", required=False)


def diagnose(python: str = "3.11", context: Path | None = None) -> list[Finding]:
    from toolkit import engine
    from toolkit.base import official_base
    from toolkit.errors import EnvironmentProblem
    from toolkit.pythons import available, offline_python

    findings = []
    try:
        client = engine.connect()
    except EnvironmentProblem as exc:
        client = None
        findings.append(Finding("engine", False, str(exc)))
    else:
        info = client.info()
        findings.append(
            Finding("engine", True, f"Docker {client.version().get('Version', '?')}, {info.get('Driver', '?')}")
        )

    buildx = engine.buildx_version()
    problem = engine.buildx_problem(buildx)
    findings.append(Finding("buildx", problem is None, problem or f"buildx {buildx}"))
    compose = cli_version("compose", "version")
    findings.append(
        Finding(
            "compose",
            bool(compose),
            compose or f"docker compose v2 is not installed (only `imgtool compose` needs it): {PROVISION_HINT}",
            required=False,
        )
    )

    if client is not None:
        findings.append(attestations(client, buildx))
    findings.append(cosign())

    if client is not None:
        official = official_base(python)
        if engine.image_exists(client, official):
            findings.append(Finding("base", True, f"{official} is present"))
        elif (offline := offline_python(python)) is not None and engine.image_exists(client, offline.image):
            findings.append(Finding("base", True, f"offline base {offline.image} (builds use it when pulls fail)"))
        else:
            bootstrap = (
                f"`imgtool base bootstrap --python {python}`"
                if offline is not None
                else f"use a Python with an offline base ({available()})"
            )
            findings.append(
                Finding(
                    "base",
                    False,
                    f"no {official} and no offline base: `docker pull {official}` where a registry answers, "
                    f"else {bootstrap}",
                )
            )
        findings.append(base_path(client, python, context or Path.cwd()))
        root = Path(client.info().get("DockerRootDir", "/var/lib/docker"))
        free = shutil.disk_usage(root if root.exists() else Path("/")).free / 1e9
        findings.append(
            Finding(
                "disk",
                free >= MIN_FREE_GB,
                f"{free:.1f} GB free under {root}"
                + (
                    ""
                    if free >= MIN_FREE_GB
                    else f": free space, e.g. `docker system prune` (need {MIN_FREE_GB:.0f} GB)"
                ),
            )
        )
    return findings


def attestations(client, buildx: str | None) -> Finding:
    """`build --provenance` and `--reproducible` need an image store that keeps OCI images and attestations."""
    from toolkit import engine

    driver = engine.buildx_driver() if buildx else None
    problem = engine.attestation_problem(client, driver)
    if problem is None:
        where = "containerd image store" if engine.containerd_store(client) else f"buildx driver {driver}"
        return Finding("attest", True, f"provenance and reproducible OCI builds work ({where})", required=False)
    return Finding(
        "attest",
        False,
        f"`build --provenance`/`--reproducible` need it: {engine.CONTAINERD_STORE_HINT}",
        required=False,
    )


def cosign() -> Finding:
    """`imgtool sign` and `verify` run cosign."""
    from toolkit.signing import COSIGN_HINT

    found = shutil.which("cosign")
    if found is None:
        return Finding("cosign", False, f"only `imgtool sign`/`verify` need it: {COSIGN_HINT}", required=False)
    return Finding("cosign", True, f"cosign at {found}", required=False)


def usable(findings: list[Finding]) -> bool:
    return all(finding.ok for finding in findings if finding.required)
