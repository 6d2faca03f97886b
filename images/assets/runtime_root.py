"""Build time, in a throw-away stage on the Debian base: a distroless runtime root, assembled from Debian packages.

    python3 runtime_root.py python ROOT [--uid N]
        The interpreter this script runs on (the one the venv is built with) and its standard library, with
        bytecode; the C libraries they link; base-files, tzdata, netbase and media-types; the CA bundle;
        /etc/passwd and /etc/group with root and the app user; /etc/nsswitch.conf; /tmp.
    python3 runtime_root.py libraries ROOT --have ROOT_PYTHON --scan DIR [--scan DIR ...] [--package P ...]
        The C libraries the ELF files under each DIR (the venv) link (DT_NEEDED) that they do not vendor
        (RUNPATH $ORIGIN, `*.libs/`) and ROOT_PYTHON does not have, each with the rest of its Debian package,
        and the extra packages P; a library no installed package has is looked up in apt by its Debian name
        (libodbc.so.2 -> libodbc2, ...) and installed into this throw-away stage first. Then /etc/ld.so.cache
        for ROOT_PYTHON and ROOT together.

Files come from dpkg's own lists (what `dpkg -L` prints), never from running a package's maintainer scripts,
so the runtime has no shell, apt, dpkg or perl. Docs, manuals, translations and lintian overrides are left
out (copyright files stay). Each package's dpkg status stanza is written to /var/lib/dpkg/status.d/<package>,
as distroless does, so image scanners see what the image holds. An interpreter that no package owns (a
published python:X.Y-slim keeps its own build in /usr/local) is copied by path instead.

A library nothing provides ends the build with one `imgtool-runtime: ...` line naming it (exit 1).
Runs on the base's own python3 with the standard library only.
"""

from __future__ import annotations

import argparse
import functools
import glob
import hashlib
import importlib.util
import os
import shutil
import stat
import struct
import subprocess
import sys
import sysconfig
import tempfile

MARKER = "imgtool-runtime:"
DPKG_INFO = "/var/lib/dpkg/info"
DPKG_STATUS = "/var/lib/dpkg/status"
STATUS_DIR = "var/lib/dpkg/status.d"
# Always in the runtime: what every image needs besides Python. netbase and media-types only where the base
# has them (a published slim base may lack media-types; Python's mimetypes has a built-in table).
REQUIRED_PACKAGES = ("base-files", "tzdata")
OPTIONAL_PACKAGES = ("netbase", "media-types")
# Never in the runtime, whatever a package lists (copyright files are kept: see keep()).
EXCLUDED_PREFIXES = (
    "/usr/share/doc/",
    "/usr/share/man/",
    "/usr/share/info/",
    "/usr/share/lintian/",
    "/usr/share/locale/",
    "/usr/share/bug/",
    "/usr/share/doc-base/",
    "/usr/share/bash-completion/",
    "/usr/share/zsh/",
    "/usr/share/menu/",
    "/usr/share/gdb/",
    "/usr/share/binfmts/",
    "/usr/share/pixmaps/",
    "/usr/share/applications/",
    "/etc/cron.",
    "/etc/logrotate.d/",
    "/etc/init.d/",
    "/etc/systemd/",
    "/usr/lib/systemd/",
)
# Parts of a standard library copied by path (no package owns it) that a server never needs, and
# site-packages: the venv has its own.
STDLIB_SKIPPED = {"site-packages", "dist-packages", "test", "tests", "idle_test", "idlelib", "tkinter",
                  "turtledemo", "ensurepip", "__pycache__"}  # fmt: skip
STDLIB_SKIPPED_PREFIXES = ("config-", "_tkinter")
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\n" \
    "services: files\nethers: files\nrpc: files\n"  # fmt: skip

DT_NULL, DT_NEEDED, DT_STRTAB, DT_SONAME, DT_RPATH, DT_RUNPATH = 0, 1, 5, 14, 15, 29
PT_LOAD, PT_DYNAMIC = 1, 2


class Failure(Exception):
    """A problem the build must stop on; its text becomes the one `imgtool-runtime:` line."""


# ---- ELF: the dynamic section's NEEDED, RUNPATH and RPATH, read with struct (no binutils in the base) ----


def elf_dynamic(path: str) -> dict | None:
    """{"needed": [...], "runpath": [...], "rpath": [...], "soname": str|None}, or None if not a dynamic ELF."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return None
            is64, order = head[4] == 2, "<" if head[5] == 1 else ">"
            if is64:
                (e_type,) = struct.unpack_from(order + "H", head, 16)
                (e_phoff,) = struct.unpack_from(order + "Q", head, 32)
                e_phentsize, e_phnum = struct.unpack_from(order + "HH", head, 54)
            else:
                (e_type,) = struct.unpack_from(order + "H", head, 16)
                (e_phoff,) = struct.unpack_from(order + "I", head, 28)
                e_phentsize, e_phnum = struct.unpack_from(order + "HH", head, 42)
            if e_type not in (2, 3):  # ET_EXEC, ET_DYN
                return None
            f.seek(e_phoff)
            table = f.read(e_phentsize * e_phnum)
            loads, dynamic = [], None
            for i in range(e_phnum):
                entry = table[i * e_phentsize : (i + 1) * e_phentsize]
                if is64:
                    p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(order + "IIQQQQ", entry)
                else:
                    p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(order + "IIIII", entry)
                if p_type == PT_LOAD:
                    loads.append((p_vaddr, p_offset, p_filesz))
                elif p_type == PT_DYNAMIC:
                    dynamic = (p_offset, p_filesz)
            if dynamic is None:
                return None  # statically linked
            f.seek(dynamic[0])
            raw = f.read(dynamic[1])
            size, fmt = (16, order + "qQ") if is64 else (8, order + "iI")
            entries = []
            for offset in range(0, len(raw) - size + 1, size):
                tag, value = struct.unpack_from(fmt, raw, offset)
                if tag == DT_NULL:
                    break
                entries.append((tag, value))
            strtab = next((value for tag, value in entries if tag == DT_STRTAB), None)
            if strtab is None:
                return None
            base = next(
                (off + strtab - vaddr for vaddr, off, filesz in loads if vaddr <= strtab < vaddr + filesz), None
            )
            if base is None:
                return None

            def string(index: int) -> str:
                f.seek(base + index)
                data = f.read(4096)
                return data.split(b"\0", 1)[0].decode("utf-8", "replace")

            info: dict = {"needed": [], "runpath": [], "rpath": [], "soname": None}
            for tag, value in entries:
                if tag == DT_NEEDED:
                    info["needed"].append(string(value))
                elif tag == DT_RUNPATH:
                    info["runpath"] += [p for p in string(value).split(":") if p]
                elif tag == DT_RPATH:
                    info["rpath"] += [p for p in string(value).split(":") if p]
                elif tag == DT_SONAME:
                    info["soname"] = string(value)
            return info
    except (OSError, struct.error):
        return None


def debian_names(soname: str) -> list[str]:
    """Debian's package names for a library soname (Debian Policy 8.1), most likely first.

    libodbc.so.2 -> libodbc2; libldap-2.5.so.0 -> libldap-2.5-0; libgcc_s.so.1 -> libgcc-s1 (plus the
    64-bit time_t `t64` forms of newer suites). A few libraries are named otherwise.
    """
    # OpenSSL 3 is libssl3 on bookworm and libssl3t64 from trixie on (the 64-bit time_t transition; libssl3 is
    # then only a virtual name, which apt cannot install).
    known = {"libz.so.1": ["zlib1g"], "libjpeg.so.62": ["libjpeg62-turbo"], "libcrypto.so.3": ["libssl3", "libssl3t64"],
             "libssl.so.3": ["libssl3", "libssl3t64"], "libcrypto.so.1.1": ["libssl1.1"],
             "libssl.so.1.1": ["libssl1.1"]}  # fmt: skip
    if soname in known:
        return known[soname]
    stem, sep, version = soname.partition(".so")
    if not sep or not stem.startswith("lib"):
        return []
    version = version.lstrip(".")
    stem = stem.lower().replace("_", "-")
    if not version:
        return [stem]
    name = f"{stem}-{version}" if stem[-1].isdigit() else f"{stem}{version}"
    return [name, f"{name}t64"]


# ---- dpkg's database, read as files ----


def canonical(path: str) -> str:
    """The path with its directories resolved: /lib/x/libc.so.6 -> /usr/lib/x/libc.so.6 on merged /usr."""
    directory, name = os.path.split(path)
    return os.path.join(_realdir(directory), name)


@functools.cache
def _realdir(directory: str) -> str:
    return os.path.realpath(directory)


class Dpkg:
    def __init__(self) -> None:
        self.files: dict[str, list[str]] = {}  # package -> paths as listed
        self.owner: dict[str, str] = {}  # canonical path -> package
        for list_file in sorted(glob.glob(os.path.join(DPKG_INFO, "*.list"))):
            package = os.path.basename(list_file)[: -len(".list")].split(":")[0]
            with open(list_file, encoding="utf-8", errors="replace") as f:
                paths = [line.rstrip("\n") for line in f if line.strip() and line.strip() != "/."]
            self.files[package] = paths
            for path in paths:
                self.owner.setdefault(canonical(path), package)
        self.status: dict[str, str] = {}
        if os.path.isfile(DPKG_STATUS):
            with open(DPKG_STATUS, encoding="utf-8", errors="replace") as f:
                for stanza in f.read().split("\n\n"):
                    fields = dict(
                        line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
                    )
                    if fields.get("Status", "").endswith(" installed") and "Package" in fields:
                        self.status[fields["Package"]] = stanza.strip() + "\n"

    def installed(self, package: str) -> bool:
        return package in self.files and package in self.status


# ---- assembling a root ----


def keep(path: str) -> bool:
    if path.startswith("/usr/share/doc/"):
        return path.endswith("/copyright")
    return not path.startswith(EXCLUDED_PREFIXES)


def library_dirs() -> list[str]:
    """Where the dynamic loader looks, as this (builder) system configures it."""
    dirs: list[str] = []

    def read(conf: str) -> None:
        try:
            with open(conf) as f:
                lines = f.read().splitlines()
        except OSError:
            return
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if line.startswith("include "):
                for included in sorted(glob.glob(line.split(None, 1)[1])):
                    read(included)
            elif line:
                dirs.append(line)

    read("/etc/ld.so.conf")
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    defaults = [f"/lib/{multiarch}", f"/usr/lib/{multiarch}"] if multiarch else []
    result = []
    for directory in [*dirs, *defaults, "/lib", "/usr/lib"]:
        if directory not in result and os.path.isdir(directory):
            result.append(directory)
    return result


class Root:
    """A directory tree being filled: ROOT, plus what an earlier layer (`have`) already holds."""

    def __init__(self, root: str, dpkg: Dpkg, have: str | None = None) -> None:
        self.root = root
        self.dpkg = dpkg
        self.have = have
        self.packages: list[str] = []
        self.have_packages = set(os.listdir(os.path.join(have, STATUS_DIR))) if have else set()
        self.search = library_dirs()
        os.makedirs(root, exist_ok=True)

    def holds(self, path: str) -> bool:
        """Whether the runtime will have `path` (canonical), from this layer or the earlier one."""
        return any(os.path.lexists(base + path) for base in (self.root, self.have) if base)

    def copy(self, path: str) -> str | None:
        """Copy one file or symlink from this system to the same (canonical) path under ROOT."""
        target = canonical(path)
        if not os.path.lexists(path) or self.holds(target):
            return None
        info = os.lstat(path)
        if stat.S_ISDIR(info.st_mode):
            return None
        dest = self.root + target
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if stat.S_ISLNK(info.st_mode):
            os.symlink(os.readlink(path), dest)
        elif stat.S_ISREG(info.st_mode):
            shutil.copy2(path, dest)
        else:
            return None
        return target

    def add_package(self, package: str) -> list[str]:
        """Every kept file of an installed package; its status stanza. Returns the ELF files added."""
        if package in self.packages or package in self.have_packages:
            return []
        if not self.dpkg.installed(package):
            raise Failure(f"Debian package {package} is not installed in the builder")
        self.packages.append(package)
        elves, copied = [], []
        for path in self.dpkg.files[package]:
            if keep(path):
                added = self.copy(path)
                if added and os.path.isfile(path) and not os.path.islink(path):
                    copied.append(added)
                    if elf_dynamic(path):
                        elves.append(added)
        self.write_record(package, copied)
        return elves

    def write_record(self, package: str, files: list[str]) -> None:
        """The package's dpkg status stanza, and the md5sums of the files it brought (status.d/<package>.md5sums,
        as distroless does): the SBOM lists the package, and a test can prove its files are in the image."""
        status = os.path.join(self.root, STATUS_DIR, package)
        os.makedirs(os.path.dirname(status), exist_ok=True)
        with open(status, "w") as f:
            f.write(self.dpkg.status[package])
        with open(status + ".md5sums", "w") as f:
            for path in sorted(files):
                with open(self.root + path, "rb") as copied:
                    f.write(f"{hashlib.md5(copied.read()).hexdigest()}  {path.lstrip('/')}\n")

    def add_file_with_links(self, path: str) -> list[str]:
        """A file no package owns (e.g. /usr/local/lib/libpython3.12.so.1.0), with the symlinks that led to it."""
        added = []
        while os.path.islink(path):
            if self.copy(path):
                added.append(canonical(path))
            path = os.path.join(os.path.dirname(path), os.readlink(path))
        if self.copy(path):
            added.append(canonical(path))
        return [p for p in added if elf_dynamic(p)]

    def resolve(self, soname: str, elf: str, info: dict) -> str | None:
        """Where the loader would find `soname` for `elf` on this system, or None."""
        origin = os.path.dirname(elf)

        def expand(directory: str) -> str:
            return directory.replace("${ORIGIN}", origin).replace("$ORIGIN", origin)

        own = [expand(d) for d in (info["runpath"] or info["rpath"])]
        if "/" in soname:
            return soname if os.path.exists(soname) else None
        for directory in [*own, *self.search]:
            candidate = os.path.join(directory, soname)
            if os.path.exists(candidate):
                return candidate
        return None

    def close(self, elves: list[str], vendor_roots: tuple[str, ...] = (), strict: bool = True,
              install=None) -> list[str]:  # fmt: skip
        """Add the package (or file) behind every library the ELF files need, and theirs, until nothing is missing.

        Libraries under `vendor_roots` (a wheel's own `*.libs/`) are the wheel's business. Returns the
        ELF files whose libraries could not be found when not `strict`.
        """
        vendored = {os.path.basename(p) for r in vendor_roots for p in glob.glob(f"{r}/**/*.so*", recursive=True)}
        queue, seen, missing = list(elves), set(), []
        while queue:
            elf = queue.pop()
            if elf in seen:
                continue
            seen.add(elf)
            info = elf_dynamic(elf)
            if info is None:
                continue
            for soname in info["needed"]:
                found = self.resolve(soname, elf, info)
                if found and found.startswith(tuple(r + "/" for r in vendor_roots)):
                    continue
                if found is None and soname in vendored:
                    continue
                if found is None and install is not None:
                    found = install(soname, elf)
                if found is None:
                    if strict:
                        shown = (
                            os.path.relpath(elf, vendor_roots[0])
                            if vendor_roots and elf.startswith(vendor_roots[0])
                            else elf
                        )
                        raise Failure(
                            f"{soname} (needed by {shown}) is in no Debian package found here: add its package "
                            'to [tool.imgtool] apt-packages, or use runtime = "debian"'
                        )
                    missing.append(elf)
                    continue
                path = canonical(found)
                if self.holds(path) and not os.path.islink(self.root + path):
                    queue.append(path)  # already here; its own needs may not be
                    continue
                package = self.dpkg.owner.get(path) or self.dpkg.owner.get(canonical(os.path.realpath(found)))
                added = self.add_package(package) if package else self.add_file_with_links(found)
                queue.extend(added)
                queue.append(canonical(os.path.realpath(found)))
        return missing


# ---- the two layers ----


def interpreter_paths() -> tuple[str, str, list[str]]:
    """(the interpreter binary, the standard library directory, the extension modules directory)."""
    exe = os.path.realpath(sys.executable)
    stdlib = sysconfig.get_path("stdlib")
    dynload = os.path.join(stdlib, "lib-dynload")
    # _tkinter (Debian's python3-tk) would bring Tk and X11: a server never draws.
    extensions = glob.glob(os.path.join(dynload, "*.so"))
    return exe, stdlib, sorted(p for p in extensions if not os.path.basename(p).startswith(STDLIB_SKIPPED_PREFIXES))


def copy_stdlib_tree(root: Root, stdlib: str) -> list[str]:
    """A standard library no package owns, by path, without tests, IDLE, tkinter, ensurepip and site-packages."""
    elves = []
    for directory, subdirs, files in os.walk(stdlib):
        subdirs[:] = [d for d in subdirs if d not in STDLIB_SKIPPED and not d.startswith(STDLIB_SKIPPED_PREFIXES)]
        for name in files:
            if name.endswith((".pyc", ".pyo", ".a")) or name.startswith(STDLIB_SKIPPED_PREFIXES):
                continue
            path = os.path.join(directory, name)
            added = root.copy(path)
            if added and name.endswith(".so") and elf_dynamic(path):
                elves.append(added)
    return elves


def compile_stdlib(root: Root, stdlib: str) -> None:
    """Bytecode for every .py copied under the standard library: the base's own .pyc when it is current, else
    compiled here (a read-only, non-root runtime could never write it, and would compile at every start)."""
    import py_compile

    base = root.root + canonical(stdlib)
    for directory, _, files in os.walk(base):
        for name in files:
            if not name.endswith(".py"):
                continue
            copied = os.path.join(directory, name)
            original = copied[len(root.root) :]
            if not os.path.isfile(original):
                continue  # a dangling link (Debian's sitecustomize.py -> /etc/python3.11/, say): nothing to compile
            source_pyc = importlib.util.cache_from_source(original)
            target_pyc = importlib.util.cache_from_source(copied)
            os.makedirs(os.path.dirname(target_pyc), exist_ok=True)
            if os.path.isfile(source_pyc) and os.path.getmtime(source_pyc) >= os.path.getmtime(original):
                shutil.copy2(source_pyc, target_pyc)
            else:
                py_compile.compile(copied, cfile=target_pyc, dfile=original, doraise=False, quiet=2)


def build_python(root_dir: str, uid: int) -> None:
    dpkg = Dpkg()
    root = Root(root_dir, dpkg)
    # Merged /usr: the top-level links first, so every package's /lib/... lands in /usr/lib/...
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        if os.path.islink(f"/{name}"):
            os.symlink(os.readlink(f"/{name}"), os.path.join(root_dir, name))
    for package in REQUIRED_PACKAGES:
        if not dpkg.installed(package):
            raise Failure(f"the base has no {package} package: build on a Debian-based Python image")
        root.add_package(package)
    for package in OPTIONAL_PACKAGES:
        if dpkg.installed(package):
            root.add_package(package)

    exe, stdlib, extensions = interpreter_paths()
    elves: list[str] = []
    owners = {dpkg.owner.get(canonical(p)) for p in [exe, os.path.join(stdlib, "os.py"), *extensions]}
    for package in sorted(p for p in owners if p):
        elves += root.add_package(package)
    if dpkg.owner.get(canonical(exe)) is None:
        elves += root.add_file_with_links(exe)
    if dpkg.owner.get(canonical(os.path.join(stdlib, "os.py"))) is None:
        elves += copy_stdlib_tree(root, stdlib)
    elves.append(canonical(exe))
    # python3 and python beside the binary, when they point at it (a venv's bin/python links to python3).
    bindir = os.path.dirname(sys.executable)
    for name in ("python3", "python"):
        link = os.path.join(bindir, name)
        if os.path.islink(link) and os.path.realpath(link) == exe:
            root.copy(link)
    # The interpreter's own extension modules whose libraries this base lacks could not load here either.
    for module in root.close(elves, strict=False):
        if module.startswith(canonical(stdlib) + "/"):
            os.remove(root.root + module)
            print(f"runtime_root: left out {os.path.basename(module)}: a library it needs is not in the base")
    compile_stdlib(root, stdlib)

    # The CA bundle (the base's own, never the build's secret) where OpenSSL looks by default.
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    if not os.path.isfile(bundle):
        raise Failure("the base has no CA bundle (/etc/ssl/certs/ca-certificates.crt): install ca-certificates")
    root.copy(bundle)
    if os.path.isfile("/etc/ssl/openssl.cnf"):
        root.copy("/etc/ssl/openssl.cnf")
    ssl_dir = os.path.join(root_dir, "usr/lib/ssl")
    os.makedirs(ssl_dir, exist_ok=True)
    for name, target in (("cert.pem", bundle), ("certs", "/etc/ssl/certs"), ("openssl.cnf", "/etc/ssl/openssl.cnf")):
        if not os.path.lexists(os.path.join(ssl_dir, name)):
            os.symlink(target, os.path.join(ssl_dir, name))
    if dpkg.installed("ca-certificates"):
        # The bundle is update-ca-certificates' output from the package's certificates: the package's record.
        root.write_record("ca-certificates", [canonical(bundle)])

    etc = os.path.join(root_dir, "etc")
    os.makedirs(etc, exist_ok=True)
    with open(os.path.join(etc, "passwd"), "w") as f:
        f.write(f"root:x:0:0:root:/root:/sbin/nologin\napp:x:{uid}:{uid}::/nonexistent:/sbin/nologin\n")
    with open(os.path.join(etc, "group"), "w") as f:
        f.write(f"root:x:0:\napp:x:{uid}:\n")
    with open(os.path.join(etc, "nsswitch.conf"), "w") as f:
        f.write(NSSWITCH)
    tmp = os.path.join(root_dir, "tmp")
    os.makedirs(tmp, exist_ok=True)
    os.chmod(tmp, 0o1777)
    print(f"runtime_root: python {sys.version.split()[0]} from {', '.join(root.packages)}")


class Apt:
    """apt in this throw-away stage, for libraries the base does not have: lists fetched once, when first needed."""

    def __init__(self, dpkg: Dpkg) -> None:
        self.dpkg = dpkg
        self.updated = False
        self.options = ["-o", "APT::Keep-Downloaded-Packages=true"]
        if os.path.isfile("/run/secrets/ca") and os.path.getsize("/run/secrets/ca"):
            self.options += ["-o", "Acquire::https::CAInfo=/run/secrets/ca"]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        return subprocess.run(["apt-get", *self.options, *args], capture_output=True, text=True, env=env)

    def update(self) -> None:
        if self.updated:
            return
        # A published image deletes downloaded packages after each install; here they go to the cache mount.
        with _suppress(OSError):
            os.remove("/etc/apt/apt.conf.d/docker-clean")
        result = self.run("update", "-qq")
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise Failure(f"apt-get update failed in the build ({last}): check the base's Debian mirror")
        self.updated = True

    def exists(self, package: str) -> bool:
        result = subprocess.run(["apt-cache", "show", "--no-all-versions", package], capture_output=True, text=True)
        return result.returncode == 0 and "Package:" in result.stdout

    def install(self, packages: list[str]) -> None:
        self.update()
        result = self.run("install", "-y", "-qq", "--no-install-recommends", *packages)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise Failure(f"apt-get install {' '.join(packages)} failed in the build ({last})")
        fresh = Dpkg()
        self.dpkg.__dict__.update(fresh.__dict__)


class _suppress:
    def __init__(self, *exceptions):
        self.exceptions = exceptions

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        return kind is not None and issubclass(kind, self.exceptions)


def build_libraries(root_dir: str, have: str, scans: list[str], packages: list[str], offline: bool) -> None:
    dpkg = Dpkg()
    root = Root(root_dir, dpkg, have=have)
    apt = None if offline else Apt(dpkg)
    installed_for: dict[str, str] = {}

    def install(soname: str, elf: str) -> str | None:
        if apt is None:
            return None
        apt.update()
        for name in debian_names(soname):
            if apt.exists(name):
                apt.install([name])
                installed_for[soname] = name
                root.dpkg = apt.dpkg
                return root.resolve(soname, elf, elf_dynamic(elf) or {"runpath": [], "rpath": []})
        return None

    missing = [p for p in packages if not dpkg.installed(p)]
    if missing:
        if apt is None:
            raise Failure(f"packages {', '.join(missing)} are not installed and apt is off")
        apt.install(missing)
    elves = []
    for package in packages:
        elves += root.add_package(package)
    scanned = []
    for tree in scans:
        for directory, _, files in os.walk(tree):
            for name in files:
                path = os.path.join(directory, name)
                if not os.path.islink(path) and elf_dynamic(path):
                    scanned.append(path)
    root.close([*scanned, *elves], vendor_roots=tuple(scans), install=install)
    write_ld_cache(root_dir, have)
    added = [p for p in root.packages if p not in packages]
    print(
        f"runtime_root: {len(scanned)} ELF files in {', '.join(scans)}; libraries from "
        f"{', '.join(added) or 'the python layer only'}"
        + (f"; extra packages {', '.join(packages)}" if packages else "")
        + (
            f"; installed with apt: {', '.join(f'{k} -> {v}' for k, v in installed_for.items())}"
            if installed_for
            else ""
        )
    )


def write_ld_cache(root_dir: str, have: str) -> None:
    """/etc/ld.so.cache for both layers: libraries outside the loader's default directories (a slim base's
    /usr/local/lib) are found only through it. Built by this system's ldconfig on a merged copy of the lists."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    with tempfile.TemporaryDirectory() as merged:
        for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            link = os.path.join(have, name)
            if os.path.islink(link):
                os.symlink(os.readlink(link), os.path.join(merged, name))
        directories = dict.fromkeys(["/etc/ld.so.conf.d", *(os.path.realpath(d) for d in library_dirs())])
        for directory in directories:
            for base in (have, root_dir):
                source = base + directory
                if not os.path.isdir(source):
                    continue
                target = merged + directory
                os.makedirs(target, exist_ok=True)
                for entry in os.scandir(source):
                    dest = os.path.join(target, entry.name)
                    if os.path.lexists(dest) or entry.is_dir(follow_symlinks=False):
                        continue
                    if entry.is_symlink():
                        os.symlink(os.readlink(entry.path), dest)
                    else:
                        shutil.copy2(entry.path, dest)
        # The builder's own search directories, not the runtime's ld.so.conf.d: /usr/local/lib (where a slim
        # base's libpython lives) comes from libc-bin's libc.conf, a package the runtime does not carry.
        os.makedirs(os.path.join(merged, "etc"), exist_ok=True)
        with open(os.path.join(merged, "etc/ld.so.conf"), "w") as f:
            f.write("".join(f"{d}\n" for d in directories if d != "/etc/ld.so.conf.d"))
        result = subprocess.run([ldconfig, "-X", "-r", merged], capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure(f"ldconfig failed ({result.stderr.strip()[:200]})")
        etc = os.path.join(root_dir, "etc")
        os.makedirs(etc, exist_ok=True)
        shutil.copy2(os.path.join(merged, "etc/ld.so.cache"), os.path.join(etc, "ld.so.cache"))
        with open(os.path.join(etc, "ld.so.conf"), "w") as f:
            f.write("".join(f"{d}\n" for d in directories if d != "/etc/ld.so.conf.d"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="layer", required=True)
    python = sub.add_parser("python")
    python.add_argument("root")
    python.add_argument("--uid", type=int, default=10001)
    libraries = sub.add_parser("libraries")
    libraries.add_argument("root")
    libraries.add_argument("--have", required=True)
    libraries.add_argument("--scan", action="append", default=[])
    libraries.add_argument("--package", action="append", default=[])
    libraries.add_argument("--offline", action="store_true", help="never run apt (tests)")
    args = parser.parse_args(argv)
    try:
        if args.layer == "python":
            build_python(args.root, args.uid)
        else:
            build_libraries(
                args.root, args.have, [s for s in args.scan if os.path.isdir(s)], args.package, args.offline
            )
    except Failure as exc:
        print(f"{MARKER} {exc}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
