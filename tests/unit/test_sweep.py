"""Every command, every option, every bad value: a sweep generated from the typer app itself.

Each option gets a family of values that are wrong for its type (out of range, zero, negative,
empty, huge, not a number, paths that do not exist / are the wrong kind / are special / cannot be
written, names with spaces and shell metacharacters, unknown choices). Every case must end with
exit 2, one `imgtool: error:` line that names the option, no traceback, and nothing left behind.

The CLI runs in-process with DOCKER_HOST pointing nowhere: a value that slipped past validation
would reach the engine and fail with "engine unreachable" instead of naming the option.
"""

from __future__ import annotations

import enum
import os
import sys
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer.main

from toolkit import cli
from toolkit.cli.options import PathRole

NOWHERE = "unix:///nonexistent/imgtool-sweep.sock"
HUGE = "x" * 5000

STRINGS = ("", " ", "a b;$(id)|`x`&", "bad\x01control", HUGE)
INTEGERS = ("-1", "0", "99999999999", "abc", "", "1.5")
FLOATS = ("-1", "0", "nan", "inf", "abc", "")
CHOICE = ("no-such-choice", "")


@dataclass(frozen=True)
class Case:
    command: tuple[str, ...]
    option: str
    value: str

    @property
    def id(self) -> str:
        shown = self.value if len(self.value) < 20 else f"{self.value[:8]}...({len(self.value)})"
        return f"{' '.join(self.command)} {self.option}={shown!r}"


def _commands(command, path=()):
    if hasattr(command, "commands"):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def _path_values(option) -> tuple[str, ...]:
    """Bad values for a path option, by what it takes (toolkit.cli.options.PathRole)."""
    parser = option.type_descriptor.parameter_info.parser
    role = getattr(parser, "role", None)
    assert isinstance(role, PathRole), f"{option.opts[0]}: declare it with a toolkit.cli.options PathParser"
    special = ("/proc", "/dev/null", "", " ", "{missing}/x")
    if role is PathRole.directory:
        return (*special, "{file}")
    if role is PathRole.file:
        return (*special, "{dir}")
    outputs = ("/proc/imgtool-sweep", "/sys/imgtool-sweep", "/dev/null", "", "{dir}", "{file}/under-a-file")
    if role is PathRole.output:
        outputs = (*outputs, "{missing}/x/out")
    # Root writes into a read-only directory all the same: that case means something only for users.
    return outputs if os.geteuid() == 0 else (*outputs, "{readonly}/out")


def _values(option) -> tuple[str, ...]:
    annotation = option.type_descriptor.annotation
    if typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return CHOICE
    if annotation is int:
        return INTEGERS
    if annotation is float:
        return FLOATS
    if annotation is Path:
        return _path_values(option)
    return STRINGS


def _swept(param) -> bool:
    return not getattr(param, "is_flag", False) and param.opts[0] != "--help"


def cases() -> list[Case]:
    found = []
    for path, command in _commands(typer.main.get_command(cli.app)):
        for param in command.params:
            if _swept(param):
                found += [Case(path, param.opts[0], value) for value in _values(param)]
    return found


# What a command's required parameters get while another of its parameters is swept.
REQUIRED = {"image": "localhost:5000/app:granian", "--key": "{keyfile}"}


def argv_for(case: Case, value: str, materialise) -> list[str]:
    """The command line: the swept value, plus valid values for every other required parameter."""
    command = typer.main.get_command(cli.app)
    for name in case.command:
        command = command.commands[name]
    argv = [*case.command]
    positional = []
    for param in command.params:
        if not param.required or param.opts[0] == case.option:
            continue
        given = materialise(REQUIRED[param.opts[0]])
        if param.opts[0].startswith("-"):
            argv += [param.opts[0], given]
        else:
            positional.append(given)
    if case.option.startswith("-"):
        argv += [case.option, value]
    else:
        positional.insert(0, value)
    return [*argv, "--", *positional] if positional else argv


CASES = cases()


def _materialise(value: str, tmp_path: Path) -> str:
    a_file = tmp_path / "a-file"
    a_file.write_text("not what was asked for\n")
    a_dir = tmp_path / "a-dir"
    a_dir.mkdir(exist_ok=True)
    readonly = tmp_path / "read-only"
    readonly.mkdir(exist_ok=True)
    readonly.chmod(0o500)
    keyfile = tmp_path / "cosign.key"
    keyfile.write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    return value.format(file=a_file, dir=a_dir, readonly=readonly, missing=tmp_path / "missing", keyfile=keyfile)


def _snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _tempdirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).iterdir()}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_a_bad_value_is_one_line_exit_2_naming_the_option(case, tmp_path, monkeypatch, capsys):
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.py").write_text("async def app(scope, receive, send):\n    pass\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("DOCKER_HOST", NOWHERE)
    monkeypatch.setenv("COLUMNS", "400")
    # A private temporary directory: what other processes on this machine leave in /tmp is not ours.
    private = tmp_path.parent / f"{tmp_path.name}-tmp"
    private.mkdir()
    monkeypatch.setenv("TMPDIR", str(private))
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    value = _materialise(case.value, tmp_path)
    argv = argv_for(case, value, lambda text: _materialise(text, tmp_path))
    before, temp_before = _snapshot(tmp_path), _tempdirs()
    monkeypatch.setattr(sys, "argv", ["imgtool", *argv])
    try:
        with pytest.raises(SystemExit) as exited:
            cli.main()
    finally:
        (tmp_path / "read-only").chmod(0o700)
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("imgtool: error:")]
    assert exited.value.code == 2, f"exit {exited.value.code}: {stderr[-500:]}"
    assert len(errors) == 1 and len(stderr.strip().splitlines()) == 1, stderr
    named = case.option if case.option.startswith("-") else f"'{case.option}'"
    assert named in errors[0], f"the error does not name {case.option}: {errors[0]}"
    assert _snapshot(tmp_path) == before, "files were left behind"
    assert _tempdirs() <= temp_before, "temporary directories were left behind"


def test_the_sweep_covers_every_command_and_option():
    commands = {case.command for case in CASES}
    every = {path for path, _ in _commands(typer.main.get_command(cli.app))}
    # Commands without a value option have nothing to sweep.
    assert every - commands <= {("servers",), ("base", "list")}, every - commands
    per_command = {}
    for case in CASES:
        per_command[" ".join(case.command)] = per_command.get(" ".join(case.command), 0) + 1
    print("sweep cases per command:", per_command, "total", len(CASES))
    assert len(CASES) > 300
    assert os.environ.get("DOCKER_HOST") != NOWHERE
