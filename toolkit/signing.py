"""Signatures with cosign: `imgtool sign` and `imgtool verify` for images in a registry.

An image is signed by digest (a tag is resolved first, so the signature names exactly what was pushed);
with `--sbom FILE` its CycloneDX SBOM is attached too, as a signed in-toto attestation. Key pairs come
from `cosign generate-key-pair`; the key's password from COSIGN_PASSWORD (or cosign's prompt on a
terminal). `--no-tlog` signs with the key alone — no transparency log, no timestamp authority — for
registries and machines that cannot reach Sigstore; verification then skips the log too. Keyless
signing (OIDC + Fulcio + Rekor) is what the GitHub workflow does with cosign directly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from toolkit.errors import EnvironmentProblem, UsageError

COSIGN_HINT = (
    "cosign is not installed: from a checkout of imgtool run scripts/provision-cosign "
    "(Debian's cosign package, unpacked), or install cosign 2.x or newer from Sigstore's releases"
)
# A signing config naming no transparency log and no timestamp authority: the key's signature alone.
OFFLINE_SIGNING_CONFIG = {
    "mediaType": "application/vnd.dev.sigstore.signingconfig.v0.2+json",
    "rekorTlogConfig": {},
    "tsaConfig": {},
}
SBOM_PREDICATE = "cyclonedx"
TIMEOUT = 300


def cosign_binary() -> str:
    found = shutil.which("cosign")
    if found is None:
        raise EnvironmentProblem(COSIGN_HINT)
    return found


def split_digest(ref: str) -> tuple[str, str | None]:
    """(repository[:tag], digest or None) of an image reference."""
    name, at, digest = ref.partition("@")
    return name, (digest if at else None)


def repository(ref: str) -> str:
    """The repository of a reference: no tag, no digest (a registry's :port stays)."""
    name, _ = split_digest(ref)
    head, slash, last = name.rpartition("/")
    return f"{head}{slash}{last.partition(':')[0]}"


def pinned(ref: str, digest: str) -> str:
    return f"{repository(ref)}@{digest}"


def check_key(key: str, kind: str) -> str:
    """A key file that exists, or a KMS/env URI (`awskms://...`, `env://NAME`) passed on as it is."""
    if "://" in key:
        return key
    path = Path(key)
    if not path.is_file():
        raise UsageError(f"--key {key}: no such file (make a pair with `cosign generate-key-pair`: {kind})")
    with path.open("rb") as handle:
        if b"-----BEGIN " not in handle.read(1 << 16):
            raise UsageError(f"--key {key} holds no PEM key: pass {kind} from `cosign generate-key-pair`")
    return key


def sign_argv(cosign: str, key: str, ref: str, signing_config: Path | None) -> list[str]:
    argv = [cosign, "sign", "--key", key, "--yes"]
    if signing_config is not None:
        argv += ["--signing-config", str(signing_config)]
    return [*argv, ref]


def attest_argv(cosign: str, key: str, ref: str, predicate: Path, signing_config: Path | None) -> list[str]:
    argv = [cosign, "attest", "--key", key, "--yes", "--type", SBOM_PREDICATE, "--predicate", str(predicate)]
    if signing_config is not None:
        argv += ["--signing-config", str(signing_config)]
    return [*argv, ref]


def verify_argv(cosign: str, key: str, ref: str, tlog: bool, attestation: bool = False) -> list[str]:
    argv = [cosign, "verify-attestation" if attestation else "verify", "--key", key]
    if attestation:
        argv += ["--type", SBOM_PREDICATE]
    if not tlog:
        argv.append("--insecure-ignore-tlog=true")
    return [*argv, ref]


def cosign_error(output: str) -> str:
    """cosign's own reason, in one line: its last `Error:` line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("Error:").strip() for line in lines if line.startswith("Error:")]
    chosen = errors[-1] if errors else (lines[-1] if lines else "no output")
    return chosen[:300]


def resolve_digest(ref: str) -> str:
    """The manifest digest a reference names in its registry (a digest reference names itself)."""
    _, digest = split_digest(ref)
    if digest:
        return digest
    result = subprocess.run(
        ["docker", "buildx", "imagetools", "inspect", ref, "--format", "{{json .Manifest}}"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if result.returncode != 0:
        reason = cosign_error(result.stderr).removeprefix("ERROR:").strip()
        raise UsageError(f"cannot resolve {ref} in its registry ({reason}): push it first, or check the name")
    return json.loads(result.stdout)["digest"]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    # The key's password: COSIGN_PASSWORD, or cosign asks on the terminal (then its prompt must show).
    interactive = "COSIGN_PASSWORD" not in os.environ and sys.stdin.isatty()
    if "COSIGN_PASSWORD" not in os.environ and not interactive and argv[1] in ("sign", "attest"):
        raise UsageError("set COSIGN_PASSWORD to the signing key's password (empty for a key without one)")
    return subprocess.run(
        argv, stdout=subprocess.PIPE, stderr=None if interactive else subprocess.PIPE, text=True, timeout=TIMEOUT
    )


@dataclass(frozen=True)
class Signed:
    image: str  # repository@digest: what the signature covers
    digest: str
    sbom_attached: bool
    tlog: bool


def sign(ref: str, key: str, sbom: Path | None = None, tlog: bool = True) -> Signed:
    cosign = cosign_binary()
    check_key(key, "the private key, cosign.key")
    if sbom is not None and not sbom.is_file():
        raise UsageError(f"--sbom {sbom}: no such file (write it with `imgtool build --sbom FILE`)")
    digest = resolve_digest(ref)
    target = pinned(ref, digest)
    with tempfile.TemporaryDirectory(prefix="imgtool-sign-") as scratch:
        config = None
        if not tlog:
            config = Path(scratch) / "signing-config.json"
            config.write_text(json.dumps(OFFLINE_SIGNING_CONFIG))
        steps = [sign_argv(cosign, key, target, config)]
        if sbom is not None:
            steps.append(attest_argv(cosign, key, target, sbom, config))
        for argv in steps:
            result = _run(argv)
            if result.returncode != 0:
                raise EnvironmentProblem(f"cosign {argv[1]} {target} failed: {cosign_error(result.stderr or '')}")
    return Signed(target, digest, sbom is not None, tlog)


@dataclass(frozen=True)
class Verification:
    image: str
    verified: bool
    digest: str | None
    reason: str  # why not, in cosign's words; empty when verified
    sbom_verified: bool | None = None  # None: not asked


def verify(ref: str, key: str, sbom: bool = False, tlog: bool = True) -> Verification:
    """Check the image's signature (and, with `sbom`, its signed CycloneDX attestation) against a public key."""
    cosign = cosign_binary()
    check_key(key, "the public key, cosign.pub")
    result = _run(verify_argv(cosign, key, ref, tlog))
    if result.returncode != 0:
        return Verification(ref, False, None, cosign_error(result.stderr or result.stdout))
    digest = signed_digest(result.stdout)
    if not sbom:
        return Verification(ref, True, digest, "")
    attested = _run(verify_argv(cosign, key, pinned(ref, digest) if digest else ref, tlog, attestation=True))
    if attested.returncode != 0:
        reason = f"the SBOM attestation does not verify: {cosign_error(attested.stderr or attested.stdout)}"
        return Verification(ref, False, digest, reason, sbom_verified=False)
    return Verification(ref, True, digest, "", sbom_verified=True)


def signed_digest(stdout: str) -> str | None:
    """The manifest digest cosign verified (its JSON: critical.image.docker-manifest-digest)."""
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        try:
            payloads = json.loads(line)
        except ValueError:
            continue
        for payload in payloads:
            digest = payload.get("critical", {}).get("image", {}).get("docker-manifest-digest")
            if digest:
                return digest
    return None
