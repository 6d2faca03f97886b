"""Private package indexes: which indexes a build uses, and how their credentials reach uv as BuildKit secrets.

Where indexes come from (pure, no I/O here):
  `[tool.imgtool] index-url`        replaces PyPI in the build (uv's default index);
  `[tool.imgtool] extra-index-url`  one URL or a list, searched before the default (uv's `--index`);
  `[[tool.uv.index]]`               uv's own named indexes, as the project declares them.

Credentials never enter a Dockerfile, a build argument, a layer, the history or a label. Each
index gets a name uv knows (`UV_INDEX` / `UV_DEFAULT_INDEX` take `name=url`), and uv reads
`UV_INDEX_<NAME>_USERNAME` / `_PASSWORD` for it. Those two variables exist only inside the
install step, filled from BuildKit secrets (`RUN --mount=type=secret,id=...,env=...`), which the
build command reads from the host's environment (`docker buildx build --secret id=...,env=VAR`):
  imgtool's own indexes   IMGTOOL_INDEX_USERNAME / IMGTOOL_INDEX_PASSWORD (one login for all of them);
  a [[tool.uv.index]] N   UV_INDEX_<N>_USERNAME / UV_INDEX_<N>_PASSWORD, exactly as uv names them.
A netrc file (`NETRC`, else `~/.netrc`) is passed as the secret `netrc` when the project uses an index.
A secret whose variable is unset is simply absent in the build: uv then tries without credentials.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from toolkit.errors import UsageError

# The host variables that carry the login for `index-url` / `extra-index-url`.
IMGTOOL_USERNAME_ENV = "IMGTOOL_INDEX_USERNAME"
IMGTOOL_PASSWORD_ENV = "IMGTOOL_INDEX_PASSWORD"
DEFAULT_NAME = "imgtool-index"
EXTRA_NAME = "imgtool-extra-{n}"
NETRC_SECRET = "netrc"
# uv's rule for index names: letters, digits, dashes, underscores and dots.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass(frozen=True)
class PackageIndex:
    """One index as uv sees it in the build: a name, a URL without credentials, and its role."""

    name: str
    url: str
    # Replaces PyPI (uv's default index); else searched before it.
    default: bool = False
    # Used only for packages pinned to it in [tool.uv.sources] (uv.lock projects); uv pip ignores it.
    explicit: bool = False
    # Where it was declared: "imgtool" ([tool.imgtool]) or "uv" ([[tool.uv.index]]).
    origin: str = "imgtool"

    @property
    def env_name(self) -> str:
        """uv's form of the name in `UV_INDEX_<NAME>_USERNAME`: upper case, other characters as `_`."""
        return re.sub(r"[^A-Z0-9]", "_", self.name.upper())

    @property
    def host_username_env(self) -> str:
        return IMGTOOL_USERNAME_ENV if self.origin == "imgtool" else f"UV_INDEX_{self.env_name}_USERNAME"

    @property
    def host_password_env(self) -> str:
        return IMGTOOL_PASSWORD_ENV if self.origin == "imgtool" else f"UV_INDEX_{self.env_name}_PASSWORD"


@dataclass(frozen=True)
class SecretMount:
    """A BuildKit secret as the Dockerfile mounts it (`env` inside the step) and the host provides it."""

    id: str
    env: str  # the variable uv reads inside the install step
    host_env: str  # the host variable `docker buildx build --secret id=...,env=...` reads


@dataclass(frozen=True)
class IndexConfig:
    indexes: tuple[PackageIndex, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.indexes)

    @property
    def default(self) -> PackageIndex | None:
        return next((index for index in self.indexes if index.default), None)

    @property
    def extra(self) -> tuple[PackageIndex, ...]:
        """The indexes searched before the default one, in the order declared (uv's priority order)."""
        return tuple(index for index in self.indexes if not index.default and not index.explicit)

    @property
    def mounts(self) -> tuple[SecretMount, ...]:
        """Two secrets per index, username and password, each exposed to uv under its own variable."""
        mounts = []
        for index in self.indexes:
            slug = index.env_name.lower().replace("_", "-")
            for field, host in (("username", index.host_username_env), ("password", index.host_password_env)):
                env = f"UV_INDEX_{index.env_name}_{field.upper()}"
                mounts.append(SecretMount(f"uv-index-{slug}-{field}", env, host))
        return tuple(mounts)

    @property
    def uv_env(self) -> dict[str, str]:
        """`UV_DEFAULT_INDEX` / `UV_INDEX` for the install step: names and URLs only, never credentials."""
        env = {}
        if self.default is not None:
            env["UV_DEFAULT_INDEX"] = f"{self.default.name}={self.default.url}"
        if self.extra:
            env["UV_INDEX"] = " ".join(f"{index.name}={index.url}" for index in self.extra)
        return env


# ---- parsing (pure) ----


def _check_url(url: object, where: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise UsageError(f'{where} must be a URL, e.g. "https://packages.example.com/simple"')
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "file") or (parts.scheme != "file" and not parts.hostname):
        raise UsageError(f"{where} = {url!r} is not an http(s) URL: e.g. https://packages.example.com/simple")
    if parts.username or parts.password:
        raise UsageError(
            f"{where} has credentials in its URL; they would end up in the Dockerfile and the image's history: "
            f"remove them and set {IMGTOOL_USERNAME_ENV}/{IMGTOOL_PASSWORD_ENV} (or UV_INDEX_<NAME>_USERNAME/"
            "PASSWORD for a [[tool.uv.index]]) in the environment instead"
        )
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise UsageError(f"{where} = {url!r} contains whitespace or control characters")
    return url


def _imgtool_indexes(settings: Mapping) -> list[PackageIndex]:
    found = []
    if "index-url" in settings:
        found.append(PackageIndex(DEFAULT_NAME, _check_url(settings["index-url"], "[tool.imgtool] index-url"), True))
    extra = settings.get("extra-index-url", [])
    urls = [extra] if isinstance(extra, str) else extra
    if not isinstance(urls, list):
        raise UsageError('[tool.imgtool] extra-index-url must be a URL or a list of URLs, e.g. ["https://..."]')
    for n, url in enumerate(urls, start=1):
        found.append(PackageIndex(EXTRA_NAME.format(n=n), _check_url(url, "[tool.imgtool] extra-index-url")))
    return found


def _uv_indexes(pyproject: Mapping) -> list[PackageIndex]:
    entries = pyproject.get("tool", {}).get("uv", {}).get("index", [])
    if not isinstance(entries, list):
        raise UsageError("[[tool.uv.index]] must be an array of tables, each with name and url")
    found = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise UsageError("[[tool.uv.index]] must be an array of tables, each with name and url")
        name = entry.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise UsageError(
                f"[[tool.uv.index]] name {name!r} is missing or not letters, digits, '-', '_' or '.': "
                "give each index a name (credentials come from UV_INDEX_<NAME>_USERNAME/PASSWORD)"
            )
        if entry.get("format", "simple") == "flat":
            # A flat index (find-links) is read by uv from pyproject.toml itself; only its credentials matter.
            url = entry.get("url")
        else:
            url = _check_url(entry.get("url"), f"[[tool.uv.index]] {name} url")
        found.append(
            PackageIndex(
                name,
                str(url),
                default=bool(entry.get("default", False)),
                explicit=bool(entry.get("explicit", False)) or entry.get("format") == "flat",
                origin="uv",
            )
        )
    return found


def index_config(settings: Mapping, pyproject: Mapping) -> IndexConfig:
    """The indexes of a project: `[tool.imgtool]` ones first (they win where both name a default)."""
    ours = _imgtool_indexes(settings)
    theirs = _uv_indexes(pyproject)
    names = [index.name for index in ours + theirs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise UsageError(f"package index name(s) {', '.join(duplicates)} declared twice: give each index its own name")
    if any(index.default for index in ours):
        # [tool.imgtool] index-url decides what replaces PyPI in the image build.
        theirs = [PackageIndex(i.name, i.url, False, i.explicit, i.origin) for i in theirs]
    elif sum(index.default for index in theirs) > 1:
        raise UsageError("more than one [[tool.uv.index]] has default = true: keep one")
    return IndexConfig(tuple(ours + theirs))


# ---- the host side (reads only what it is given) ----


@dataclass(frozen=True)
class BuildSecret:
    """One `--secret` of the build command: `id=...,env=VAR` or `id=...,src=FILE`."""

    id: str
    env: str | None = None
    src: str | None = None

    def argument(self) -> str:
        return f"id={self.id},env={self.env}" if self.env else f"id={self.id},src={self.src}"


def netrc_file(environ: Mapping[str, str], home: Path) -> Path | None:
    """The netrc uv would read on the host: `NETRC`, else `~/.netrc`, when it exists."""
    candidate = Path(environ["NETRC"]).expanduser() if environ.get("NETRC") else home / ".netrc"
    return candidate if candidate.is_file() else None


def check_credentials(config: IndexConfig, environ: Mapping[str, str]) -> None:
    """A username without a password (or the reverse) is a mistake worth one clear line."""
    for index in config.indexes:
        user, password = environ.get(index.host_username_env), environ.get(index.host_password_env)
        if bool(user) != bool(password):
            have, need = (
                (index.host_username_env, index.host_password_env)
                if user
                else (index.host_password_env, index.host_username_env)
            )
            raise UsageError(f"{have} is set but {need} is not: set both for the index {index.name} ({index.url})")


def build_secrets(config: IndexConfig, netrc: Path | None) -> tuple[BuildSecret, ...]:
    """The `--secret` arguments for the indexes: every credential by its host variable, and the netrc file.

    Unset variables are harmless: BuildKit leaves the secret out and uv goes unauthenticated.
    """
    if not config:
        return ()
    secrets = [BuildSecret(mount.id, env=mount.host_env) for mount in config.mounts]
    if netrc is not None:
        secrets.append(BuildSecret(NETRC_SECRET, src=str(netrc)))
    return tuple(secrets)


def compose_secrets(secrets: tuple[BuildSecret, ...]) -> dict[str, dict[str, str]]:
    """The same secrets as a compose file's top-level `secrets:` (values from the environment or a file)."""
    return {secret.id: ({"environment": secret.env} if secret.env else {"file": str(secret.src)}) for secret in secrets}


def with_build_secrets(model: dict, secrets: tuple[BuildSecret, ...]) -> dict:
    """A compose model whose builds also get the index secrets (values from the environment at build time)."""
    if not secrets:
        return model
    services = {}
    for name, service in model["services"].items():
        if "build" in service:
            build = dict(service["build"])
            build["secrets"] = list(dict.fromkeys([*build.get("secrets", []), *(secret.id for secret in secrets)]))
            service = {**service, "build": build}
        services[name] = service
    return {**model, "services": services, "secrets": {**model.get("secrets", {}), **compose_secrets(secrets)}}
