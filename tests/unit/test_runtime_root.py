"""images/assets/runtime_root.py on the host (Debian, like the build's base): ELF reading, Debian names, libraries."""

import glob
import importlib.util
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit import IMAGES_DIR

SCRIPT = IMAGES_DIR / "assets" / "runtime_root.py"
_spec = importlib.util.spec_from_file_location("runtime_root", SCRIPT)
runtime_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(runtime_root)


def fake_elf(path: Path, needed: list[str], runpath: str | None = None) -> Path:
    """A minimal 64-bit little-endian shared object: one PT_LOAD over the file, a PT_DYNAMIC, a string table."""
    strtab, offsets = b"\0", {}
    for name in [*needed, *([runpath] if runpath else [])]:
        offsets[name] = len(strtab)
        strtab += name.encode() + b"\0"
    strtab_at, dynamic_at = 200, 400
    entries = [(1, offsets[name]) for name in needed]  # DT_NEEDED
    if runpath:
        entries.append((29, offsets[runpath]))  # DT_RUNPATH
    entries += [(5, strtab_at), (0, 0)]  # DT_STRTAB (a vaddr: the load maps offset 0 at 0), DT_NULL
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    size = dynamic_at + len(dynamic)
    header = struct.pack(
        "<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + b"\0" * 9, 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0
    )
    load = struct.pack("<IIQQQQQQ", 1, 5, 0, 0, 0, size, size, 0x1000)
    dyn = struct.pack("<IIQQQQQQ", 2, 6, dynamic_at, dynamic_at, dynamic_at, len(dynamic), len(dynamic), 8)
    data = bytearray(size)
    data[0 : len(header + load + dyn)] = header + load + dyn
    data[strtab_at : strtab_at + len(strtab)] = strtab
    data[dynamic_at:] = dynamic
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def test_reads_needed_libraries_and_runpath(tmp_path):
    elf = fake_elf(tmp_path / "_ext.so", ["libodbc.so.2", "libc.so.6"], runpath="$ORIGIN/../pkg.libs")
    assert runtime_root.elf_dynamic(str(elf)) == {
        "needed": ["libodbc.so.2", "libc.so.6"],
        "runpath": ["$ORIGIN/../pkg.libs"],
        "rpath": [],
        "soname": None,
    }
    (tmp_path / "text.so").write_text("not an ELF file\n")
    assert runtime_root.elf_dynamic(str(tmp_path / "text.so")) is None


def test_reads_a_real_library_of_this_system():
    libssl = glob.glob("/usr/lib/*/libssl.so.3")
    if not libssl:
        pytest.skip("no libssl3 on this machine")
    info = runtime_root.elf_dynamic(libssl[0])
    assert info["soname"] == "libssl.so.3" and "libcrypto.so.3" in info["needed"]


def test_debian_package_names_for_sonames():
    assert runtime_root.debian_names("libodbc.so.2")[0] == "libodbc2"
    assert runtime_root.debian_names("libldap-2.5.so.0")[0] == "libldap-2.5-0"
    assert runtime_root.debian_names("libgcc_s.so.1")[0] == "libgcc-s1"
    assert runtime_root.debian_names("libpq.so.5")[0] == "libpq5"
    assert runtime_root.debian_names("libz.so.1") == ["zlib1g"]
    assert runtime_root.debian_names("libjpeg.so.62") == ["libjpeg62-turbo"]
    assert runtime_root.debian_names("notalib") == []
    # Names the 64-bit time_t transition changed (trixie and newer) are tried after the old ones.
    assert runtime_root.debian_names("libssl.so.3") == ["libssl3", "libssl3t64"]
    assert runtime_root.debian_names("libreadline.so.8") == ["libreadline8", "libreadline8t64"]


def libraries(tmp_path, scan: Path) -> subprocess.CompletedProcess:
    """The libraries layer against an empty python layer, never running apt."""
    have = tmp_path / "have"
    (have / "var/lib/dpkg/status.d").mkdir(parents=True)
    command = [sys.executable, str(SCRIPT), "libraries", str(tmp_path / "root"), "--have", str(have)]
    return subprocess.run([*command, "--scan", str(scan), "--offline"], capture_output=True, text=True)


def test_a_library_no_package_has_stops_with_one_line_naming_it(tmp_path):
    venv = tmp_path / "venv"
    fake_elf(
        venv / "lib/python3.11/site-packages/nolib/_nolib.cpython-311-x86_64-linux-gnu.so", ["libimgtool-none.so.7"]
    )
    result = libraries(tmp_path, venv)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("imgtool-runtime:")]
    assert line == (
        "imgtool-runtime: libimgtool-none.so.7 (needed by lib/python3.11/site-packages/nolib/"
        "_nolib.cpython-311-x86_64-linux-gnu.so) is in no Debian package found here: add its package to "
        '[tool.imgtool] apt-packages, or use runtime = "debian"'
    )


def test_libraries_a_wheel_vendors_are_its_own(tmp_path):
    venv = tmp_path / "venv"
    site = venv / "lib/python3.11/site-packages"
    # auditwheel's layout: the extension finds pkg.libs/ through RUNPATH $ORIGIN; a second one only by name.
    fake_elf(site / "pkg.libs/libvendored-1a2b3c.so.1", [])
    fake_elf(site / "pkg/_ext.so", ["libvendored-1a2b3c.so.1"], runpath="$ORIGIN/../pkg.libs")
    fake_elf(site / "pkg/_other.so", ["libvendored-1a2b3c.so.1"])
    result = libraries(tmp_path, venv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "libraries from the python layer only" in result.stdout
    assert (tmp_path / "root/etc/ld.so.cache").is_file()


def test_a_system_library_brings_its_whole_debian_package(tmp_path):
    if not glob.glob("/var/lib/dpkg/info/zlib1g*.list"):
        pytest.skip("zlib1g is not installed here")
    venv = tmp_path / "venv"
    fake_elf(venv / "lib/python3.11/site-packages/z/_z.so", ["libz.so.1"])
    result = libraries(tmp_path, venv)
    assert result.returncode == 0, result.stdout + result.stderr
    root = tmp_path / "root"
    assert "libraries from zlib1g" in result.stdout
    assert glob.glob(str(root / "usr/lib/*/libz.so.1"))
    assert (root / "var/lib/dpkg/status.d/zlib1g").read_text().startswith("Package: zlib1g\n")
    # Docs are left out, the copyright stays.
    assert (root / "usr/share/doc/zlib1g/copyright").is_file()
    assert not glob.glob(str(root / "usr/share/doc/zlib1g/changelog*"))
