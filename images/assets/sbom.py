"""Build-time: complete the image's CycloneDX SBOM and write it reproducibly (images/fragments/sbom.j2).

cyclonedx-py lists the Python packages of the image's venv; this adds what the runtime's Debian package
database says is installed (dpkg's `status` file, or distroless-style `status.d/` entries), the operating
system, the interpreter when no Debian package provides it (python:X.Y-slim), the image itself as the
component the SBOM describes and imgtool as a tool; sorts everything; and validates the result against
the CycloneDX schema with the generator's own library (importable in the builder stage that runs this).
Standard library only, apart from that validation.

Usage: sbom.py PYTHON_SBOM ROOT OUTPUT --name NAME --tool-version VERSION [--venv /opt/venv]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import quote

SPEC_VERSION = "1.6"
IMAGE_REF = "imgtool:image"


def parse_control(text: str) -> list[dict[str, str]]:
    """Stanzas of a Debian control-style file (dpkg's status); continuation lines are kept."""
    stanzas, fields, key = [], {}, None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                stanzas.append(fields)
            fields, key = {}, None
        elif line[0] in " \t" and key is not None:
            fields[key] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    if fields:
        stanzas.append(fields)
    return stanzas


def installed_packages(root: Path) -> list[dict[str, str]]:
    """The Debian packages installed under `root`: dpkg's status file, plus any status.d/ entries."""
    dpkg = root / "var/lib/dpkg"
    found = []
    status = dpkg / "status"
    if status.is_file():
        for stanza in parse_control(status.read_text(encoding="utf-8", errors="replace")):
            if stanza.get("Status", "").endswith(" installed"):
                found.append(stanza)
    status_d = dpkg / "status.d"
    if status_d.is_dir():
        for entry in sorted(status_d.iterdir()):
            if entry.is_file() and not entry.name.endswith(".md5sums"):
                found.extend(parse_control(entry.read_text(encoding="utf-8", errors="replace")))
    return [stanza for stanza in found if stanza.get("Package") and stanza.get("Version")]


def os_release(root: Path) -> dict[str, str]:
    for candidate in (root / "etc/os-release", root / "usr/lib/os-release"):
        if candidate.is_file():
            pairs = (line.partition("=") for line in candidate.read_text().splitlines() if "=" in line)
            return {key: value.strip().strip('"') for key, _, value in pairs}
    return {}


def _encode(value: str) -> str:
    return quote(value, safe=".-_~")


def deb_purl(package: dict[str, str], os_info: dict[str, str]) -> str:
    """pkg:deb/<distro id>/<name>@<version>?arch=<arch>&distro=<id>-<version id> (the purl spec's deb type)."""
    namespace = os_info.get("ID", "debian")
    qualifiers = [f"arch={_encode(package.get('Architecture', 'all'))}"]
    if os_info.get("VERSION_ID"):
        qualifiers.append(f"distro={_encode(namespace + '-' + os_info['VERSION_ID'])}")
    name, version = package["Package"], package["Version"]
    return f"pkg:deb/{_encode(namespace)}/{_encode(name)}@{_encode(version)}?{'&'.join(qualifiers)}"


def deb_component(package: dict[str, str], os_info: dict[str, str]) -> dict:
    purl = deb_purl(package, os_info)
    component = {
        "type": "library",
        "bom-ref": purl,
        "name": package["Package"],
        "version": package["Version"],
        "purl": purl,
    }
    description = package.get("Description", "").split("\n", 1)[0].strip()
    if description:
        component["description"] = description
    source = package.get("Source", "").split(" ", 1)[0]
    if source and source != package["Package"]:
        component["properties"] = [{"name": "imgtool:deb:source", "value": source}]
    return component


def os_component(os_info: dict[str, str]) -> dict | None:
    if not os_info.get("ID"):
        return None
    component = {
        "type": "operating-system",
        "bom-ref": f"os:{os_info['ID']}-{os_info.get('VERSION_ID', 'unknown')}",
        "name": os_info["ID"],
    }
    if os_info.get("VERSION_ID"):
        component["version"] = os_info["VERSION_ID"]
    if os_info.get("PRETTY_NAME"):
        component["description"] = os_info["PRETTY_NAME"]
    return component


def interpreter(root: Path, venv: str | None) -> dict[str, str]:
    """The venv's pyvenv.cfg (`home`, `version_info`, `implementation`): which Python runs the app."""
    if not venv:
        return {}
    config = root / venv.lstrip("/") / "pyvenv.cfg"
    if not config.is_file():
        return {}
    pairs = (line.partition("=") for line in config.read_text().splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, _, value in pairs}


def python_component(venv_config: dict[str, str], packages: list[dict[str, str]]) -> dict | None:
    """The interpreter itself, when no Debian package provides it (python:X.Y-slim builds it into /usr/local)."""
    version = venv_config.get("version_info", "")
    if not version:
        return None
    minor = ".".join(version.split(".")[:2])
    if any(package["Package"] in (f"python{minor}-minimal", f"libpython{minor}-minimal") for package in packages):
        return None
    name = venv_config.get("implementation", "CPython").lower()
    purl = f"pkg:generic/{_encode(name)}@{_encode(version)}"
    return {
        "type": "application",
        "bom-ref": purl,
        "name": name,
        "version": version,
        "purl": purl,
        "description": f"the Python interpreter the venv runs on ({venv_config.get('home', '?')})",
    }


def _sort_key(component: dict) -> tuple:
    return (
        component.get("type", ""),
        component.get("name", "").lower(),
        component.get("version", ""),
        component.get("bom-ref", ""),
    )


def complete(
    python_bom: dict,
    packages: list[dict[str, str]],
    os_info: dict[str, str],
    name: str,
    tool_version: str,
    venv_config: dict[str, str] | None = None,
) -> dict:
    """The whole SBOM: cyclonedx-py's Python components plus the OS and its packages, the image as root."""
    bom = dict(python_bom)
    components = list(bom.get("components", []))
    seen = {component.get("bom-ref") for component in components}
    extra = [os_component(os_info), python_component(venv_config or {}, packages)]
    for component in [c for c in extra if c] + [deb_component(package, os_info) for package in packages]:
        if component["bom-ref"] not in seen:
            seen.add(component["bom-ref"])
            components.append(component)
    bom["components"] = sorted(components, key=_sort_key)

    metadata = dict(bom.get("metadata", {}))
    metadata["component"] = {"type": "container", "bom-ref": IMAGE_REF, "name": name}
    tools = dict(metadata.get("tools", {}))
    tools["components"] = sorted(
        [*tools.get("components", []), {"type": "application", "name": "imgtool", "version": tool_version}],
        key=_sort_key,
    )
    metadata["tools"] = tools
    bom["metadata"] = metadata

    dependencies = [entry for entry in bom.get("dependencies", []) if entry.get("ref") != IMAGE_REF]
    dependencies.append({"ref": IMAGE_REF, "dependsOn": sorted(ref for ref in seen if ref)})
    bom["dependencies"] = sorted(dependencies, key=lambda entry: entry["ref"])
    return bom


def validate(text: str) -> str | None:
    """The schema error, None when valid (or when the generator's library is not importable)."""
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        return None
    error = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION)).validate_str(text)
    return None if error is None else str(error)[:500]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("python_sbom", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("--name", required=True)
    parser.add_argument("--tool-version", required=True)
    parser.add_argument("--venv", help="the venv's path in the image: names the interpreter when dpkg does not")
    args = parser.parse_args(argv)
    bom = complete(
        json.loads(args.python_sbom.read_text()),
        installed_packages(args.root),
        os_release(args.root),
        args.name,
        args.tool_version,
        interpreter(args.root, args.venv),
    )
    text = json.dumps(bom, indent=2, ensure_ascii=False) + "\n"
    error = validate(text)
    if error:
        print(f"imgtool-sbom: the SBOM does not validate against CycloneDX {SPEC_VERSION}: {error}", flush=True)
        return 1
    args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
