"""Render a smoke Report: a rich table for people, JSON and JUnit XML for machines."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import asdict

from rich.table import Table

from toolkit.smoke.model import CHECKS, Report, Status

_STYLE = {
    Status.PASS: "green",
    Status.FAIL: "bold red",
    Status.STALE: "bold magenta",
    Status.NA: "dim",
    Status.SKIP: "dim",
}


def table(report: Report) -> Table:
    grid = Table(title="imgtool test")
    grid.add_column("check")
    for server in report.servers:
        grid.add_column(server.server)
    for check in CHECKS:
        cells = []
        for server in report.servers:
            result = server.result(check)
            if result is None:
                cells.append("")
                continue
            text = result.status.value
            if result.failed:
                text += f" ({_short(result.detail)})"
            elif result.short:
                text += f" ({result.short})"
            cells.append(f"[{_STYLE[result.status]}]{_escape(text)}[/]")
        grid.add_row(check, *cells)
    grid.add_row("time", *(f"{server.seconds:.1f} s" for server in report.servers))
    return grid


def notes(report: Report) -> list[str]:
    """Why each check was n/a or skipped: one line per reason, servers sharing it grouped."""
    reasons: dict[tuple[str, str, str], list[str]] = {}
    for server in report.servers:
        for result in server.results:
            if result.status in (Status.NA, Status.SKIP):
                reasons.setdefault((result.check, result.status.value, result.detail), []).append(server.server)
    return [f"{check} {status} on {', '.join(names)}: {detail}" for (check, status, detail), names in reasons.items()]


def failures(report: Report) -> list[str]:
    """One line per failing check, in full, then each failing server's container logs."""
    lines = []
    for server in report.servers:
        for result in server.results:
            if result.failed:
                lines.append(f"{server.server} {result.check}: {result.status.value}: {result.detail}")
    for server in report.servers:
        if server.failed and server.logs:
            lines.append(f"\n== {server.server} ({server.image}) ==\n{server.logs.rstrip()}")
    return lines


def as_dict(report: Report) -> dict:
    return {
        "ok": not report.failed,
        "servers": [
            {
                **asdict(server),
                "failed": server.failed,
                "results": [{**asdict(result), "status": result.status.value} for result in server.results],
            }
            for server in report.servers
        ],
    }


def junit(report: Report) -> str:
    suites = ET.Element("testsuites", name="imgtool test")
    for server in report.servers:
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=server.server,
            tests=str(len(server.results)),
            failures=str(sum(result.failed for result in server.results)),
            skipped=str(sum(result.status in (Status.NA, Status.SKIP) for result in server.results)),
            time=f"{server.seconds:.3f}",
        )
        for result in server.results:
            case = ET.SubElement(
                suite, "testcase", classname=f"imgtool.{server.server}", name=result.check, time=f"{result.seconds:.3f}"
            )
            if result.failed:
                failure = ET.SubElement(case, "failure", message=f"{result.status.value}: {result.detail}")
                failure.text = server.logs
            elif result.status in (Status.NA, Status.SKIP):
                ET.SubElement(case, "skipped", message=f"{result.status.value}: {result.detail}")
    ET.indent(suites)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"


def _short(text: str, limit: int = 48) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")
