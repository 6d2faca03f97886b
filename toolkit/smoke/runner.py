"""The smoke runner: owns container lifetimes (start, wait healthy, check, stop, remove).

Its containers follow the container contract (toolkit.containers): published on 127.0.0.1 only and
labelled `imgtool.test=<run id>`, so a run removes exactly what it started, also on Ctrl-C and on errors.
"""

from __future__ import annotations

import contextlib
import shutil
import ssl
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import httpx
import requests.exceptions
import trustme

from toolkit import containers
from toolkit.containers import Role
from toolkit.servers import PROTOCOLS, WSGI_NOT_APPLICABLE, ServerSpec
from toolkit.smoke import checks, probe, shutdown
from toolkit.smoke.checks import CheckFailure, Target
from toolkit.smoke.model import CHECKS, CheckResult, ServerReport, Status

# Where an image's command names its app (every imgtool-built image), the main container serves it through
# imgtool_probe.py: lifespan is read from what the server sent the app, graceful holds requests in the app
# across SIGTERM, and ws finds its routes in the app's own route table. Without it, ws needs a named route
# and lifespan cannot be seen; graceful still runs its burst.
NO_WS_ROUTE = (
    "needs a WebSocket route: --ws-path or [tool.imgtool] ws-path "
    "(the image's command names no app whose route table imgtool can read)"
)
NO_PROBE = "needs an image whose command names its app (imgtool's probe wraps the app to see what the server sends)"
NO_LIFESPAN = "the app does not support lifespan"
CERT_DIR = "/certs"
DEFAULT_CLEAN_EXIT_CODES = frozenset({0, 143})
LOG_TAIL = 60


@dataclass(frozen=True)
class ImageUnderTest:
    """An image and what is known about it: from imgtool's labels, or from flags."""

    ref: str
    name: str
    port: int
    # None: no health route configured; GET / must answer below 500.
    health_path: str | None
    reference_routes: bool
    # The WebSocket route the ws check opens; None: the app names none.
    ws_path: str | None
    spec: ServerSpec | None
    app: str | None
    claimed: frozenset[str]
    limitations: dict[str, str] = field(default_factory=dict)
    intermittent: frozenset[str] = frozenset()
    environment: dict[str, str] = field(default_factory=dict)
    # Checks that cannot apply to the image's app, whatever the server (a WSGI app's ws and lifespan), and why.
    not_applicable: dict[str, str] = field(default_factory=dict)
    # The app's interface: the probe wraps the app as one of the same kind.
    interface: str = "asgi"
    # The image's command (CMD) and PYTHONPATH: the probe takes the app's place in the one and joins the other.
    command: tuple[str, ...] = ()
    pythonpath: str | None = None

    @property
    def probe_command(self) -> list[str] | None:
        """The image's command serving the app through imgtool_probe.py; None where it names no app."""
        return probe.probe_command(self.command, self.app) if self.app else None


def describe_image(
    client: docker.DockerClient,
    ref: str,
    health_path: str | None = None,
    port: int | None = None,
    protocols: list[str] | None = None,
    environment: dict[str, str] | None = None,
    ws_path: str | None = None,
) -> ImageUnderTest:
    labels = containers.image_labels(client, ref)
    spec = labels.spec
    always = {"health", "nonroot", "readonly"}
    # An image of a server imgtool does not know is held to lifespan and graceful shutdown; `--protocol`
    # replaces only the protocol claims.
    behaviours = spec.claims - set(PROTOCOLS) if spec else {"lifespan", "graceful"}
    protocol_claims = set(protocols) if protocols else (spec.protocols if spec else {"http1"})
    claimed = frozenset(always | behaviours | protocol_claims)
    environment = dict(environment or {})
    if health_path:
        # The image's own HEALTHCHECK reads HEALTH_PATH at run time: the flag changes what Docker asks too.
        environment["HEALTH_PATH"] = health_path
    config = client.images.get(ref).attrs.get("Config") or {}
    image_env = dict(item.partition("=")[::2] for item in config.get("Env") or [])
    return ImageUnderTest(
        ref=ref,
        name=labels.name,
        port=port or labels.port,
        health_path=health_path or labels.health_path,
        reference_routes=labels.reference_routes,
        ws_path=ws_path or labels.ws_path,
        spec=spec,
        app=labels.app,
        claimed=claimed,
        limitations=dict(spec.limitations) if spec else {},
        intermittent=spec.intermittent if spec else frozenset(),
        environment=environment,
        not_applicable=dict(WSGI_NOT_APPLICABLE) if labels.interface == "wsgi" else {},
        interface=labels.interface,
        command=tuple(config.get("Cmd") or ()),
        pythonpath=environment.get("PYTHONPATH") or image_env.get("PYTHONPATH") or None,
    )


def decide(
    check: str,
    claimed: bool,
    passed: bool,
    detail: str,
    limitation: str | None,
    seconds: float,
    intermittent: bool = False,
) -> CheckResult:
    """Map what happened onto the report: claims keep the registry honest in both directions. A pass of what the
    registry knows fails only now and then is reported as observed, not as a stale registry."""
    if claimed:
        return CheckResult(check, Status.PASS if passed else Status.FAIL, detail, seconds)
    if passed and intermittent:
        return CheckResult(check, Status.NA, f"{limitation or 'not claimed'}; observed this run: {detail}", seconds)
    if passed:
        why = f" (registry says: {limitation})" if limitation else ""
        return CheckResult(check, Status.STALE, f"passed though not claimed{why}: update servers.py", seconds)
    return CheckResult(check, Status.NA, f"{limitation or 'not claimed'}; observed: {detail}", seconds)


def judge(image: ImageUnderTest, check: str, passed: bool, detail: str, seconds: float) -> CheckResult:
    """`decide` for a check that ran on `image`. Without the probe, graceful holds no request in the app (only
    its burst runs): a pass there cannot contradict a registry that says in-flight requests are dropped."""
    limitation = image.limitations.get(check)
    result = decide(check, check in image.claimed, passed, detail, limitation, seconds, check in image.intermittent)
    if check == "graceful" and result.status is Status.STALE and image.probe_command is None:
        return CheckResult(check, Status.NA, f"{limitation or 'not claimed'}; observed: {detail}", seconds)
    return result


def plan_checks(image: ImageUnderTest, selected: set[str]) -> dict[str, str | None]:
    """Each check → None to run it, or the reason it is skipped."""
    decisions: dict[str, str | None] = {}
    for check in CHECKS:
        if check in image.not_applicable:
            decisions[check] = image.not_applicable[check]
        elif check not in selected and check != "health":
            decisions[check] = "not selected"
        elif check == "ws" and image.ws_path is None and image.probe_command is None:
            decisions[check] = NO_WS_ROUTE
        elif check == "h2-tls" and (image.spec is None or image.app is None):
            decisions[check] = "needs an imgtool-built image (TLS flags come from the server registry)"
        elif check == "lifespan" and image.probe_command is None:
            decisions[check] = NO_PROBE
        else:
            decisions[check] = None
    return decisions


class Runner(containers.Run):
    def __init__(self, client: docker.DockerClient, run_id: str, timeout: float = 20.0, stop_timeout: float = 10.0):
        super().__init__(client, run_id)
        self.timeout = timeout
        self.stop_timeout = stop_timeout

    @contextlib.contextmanager
    def container(self, image: ImageUnderTest, role: Role, **options) -> Iterator[containers.Container]:
        """A started container that is always removed, with its logs kept in `self.logs`."""
        options["environment"] = {**image.environment, **options.get("environment", {})}
        # Same test command as the image's HEALTHCHECK, polled faster than the image's default.
        options["healthcheck"] = {"interval": 250_000_000}
        with self.start(image.ref, role, image.port, image.name, **options) as container:
            try:
                yield container
            finally:
                with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                    self.logs.append(f"--- {role} container logs ---\n" + _logs(container))

    def target(self, container, image: ImageUnderTest, tls: ssl.SSLContext | None = None) -> Target:
        try:
            port = containers.host_port(container, image.port)
        except containers.NotPublished as exc:
            raise CheckFailure(str(exc)) from None
        return Target(
            port=port,
            health_path=image.health_path,
            reference_routes=image.reference_routes,
            tls_context=tls,
        )

    def wait_healthy(self, container, target: Target) -> tuple[bool, str]:
        started = time.monotonic()
        health = "none"
        while time.monotonic() - started < self.timeout:
            container.reload()
            state = container.attrs["State"]
            if state["Status"] in ("exited", "dead"):
                return False, f"container exited with code {state['ExitCode']} before becoming healthy"
            health_state = state.get("Health")
            if health_state is None:
                return False, "the image has no HEALTHCHECK"
            health = health_state.get("Status", "none")
            if health == "healthy" and checks.probe_health(target):
                elapsed = time.monotonic() - started
                return True, f"healthy after {elapsed:.1f}s, GET {target.probe_path}: {target.health_rule}"
            if health == "unhealthy":
                last = (health_state.get("Log") or [{}])[-1].get("Output", "").strip()
                return False, f"Docker health status unhealthy: {last[:200]}"
            time.sleep(0.1)
        probe = target.health_rule if checks.probe_health(target) else f"not {target.health_rule}"
        last = ((container.attrs["State"].get("Health") or {}).get("Log") or [{}])[-1].get("Output", "").strip()
        said = f", its last check said: {last[:160]}" if last else ""
        return (
            False,
            f"not healthy within {self.timeout:.0f}s (Docker health: {health}{said}; GET {target.probe_path}: {probe})",
        )

    def run(
        self, image: ImageUnderTest, selected: set[str], progress: Callable[[str], None] = lambda _: None
    ) -> ServerReport:
        started = time.monotonic()
        self.logs: list[str] = []
        report = ServerReport(server=image.name, image=image.ref)
        plan = plan_checks(image, selected)
        outcomes: dict[str, tuple[bool, str, float]] = {}
        # Decided by the app, not by the server (or not run after all): reported as is, whatever the server claims.
        settled: dict[str, CheckResult] = {}

        def attempt(check: str, action: Callable[[], str]) -> bool:
            progress(check)
            began = time.monotonic()
            try:
                detail, passed = action(), True
            except CheckFailure as exc:
                detail, passed = str(exc), False
            outcomes[check] = (passed, detail, time.monotonic() - began)
            return passed

        self._main_container(image, plan, attempt, settled)
        if plan["h2-tls"] is None and outcomes.get("health", (False,))[0]:
            self._tls_container(image, attempt)
        if plan["readonly"] is None and outcomes.get("health", (False,))[0]:
            self._readonly_container(image, attempt)

        healthy = outcomes.get("health", (False,))[0]
        for check in CHECKS:
            skip_reason = plan[check]
            if check in image.not_applicable:
                report.results.append(CheckResult(check, Status.NA, image.not_applicable[check]))
            elif check in settled:
                report.results.append(settled[check])
            elif check in outcomes:
                report.results.append(judge(image, check, *outcomes[check]))
            elif skip_reason is not None:
                report.results.append(CheckResult(check, Status.SKIP, skip_reason))
            elif not healthy and check in image.claimed:
                report.results.append(CheckResult(check, Status.FAIL, "not run: the container never became healthy"))
            else:
                report.results.append(CheckResult(check, Status.SKIP, "not run: the container never became healthy"))
        report.seconds = time.monotonic() - started
        if report.failed:
            report.logs = "\n".join(self.logs)
        return report

    @contextlib.contextmanager
    def _probe_options(self, image: ImageUnderTest) -> Iterator[dict]:
        """Container options serving the image's app through imgtool_probe.py (none where it names no app)."""
        command = image.probe_command
        if command is None or image.app is None:
            yield {}
            return
        with tempfile.TemporaryDirectory(prefix="imgtool-probe-") as directory:
            shutil.copyfile(probe.PROBE_FILE, Path(directory) / probe.PROBE_FILE.name)
            Path(directory).chmod(0o755)
            (Path(directory) / probe.PROBE_FILE.name).chmod(0o644)
            yield {
                "command": command,
                "environment": probe.probe_environment(image.app, image.pythonpath, image.interface),
                "volumes": {directory: {"bind": probe.PROBE_DIR, "mode": "ro"}},
            }

    def _main_container(self, image: ImageUnderTest, plan: dict[str, str | None], attempt, settled) -> None:
        probed = image.probe_command is not None
        with self._probe_options(image) as options, self.container(image, Role.MAIN, **options) as container:
            try:
                target = self.target(container, image)
            except CheckFailure as exc:
                failure = exc
                attempt("health", lambda: _raise(failure))
                return

            def health() -> str:
                ok, detail = self.wait_healthy(container, target)
                if not ok:
                    raise CheckFailure(detail)
                return detail

            if not attempt("health", health):
                if plan["lifespan"] is None:
                    # An app whose lifespan startup failed stops the server: say so, beside the health failure.
                    outcome, detail = probe.lifespan_verdict(probe.events(_all_logs(container)), stopped=False)
                    if outcome == probe.Lifespan.FAILED:
                        attempt("lifespan", lambda: _raise(CheckFailure(detail)))
                return
            if plan["nonroot"] is None:
                attempt("nonroot", lambda: checks.nonroot(container))
            for check in ("http1", "h2c"):
                if plan[check] is None:
                    attempt(check, lambda check=check: getattr(checks, check)(target))
            if plan["ws"] is None:
                routes, why = self._ws_routes(container, image)
                if routes:
                    attempt("ws", lambda: self._ws(target, routes, why))
                else:
                    settled["ws"] = CheckResult("ws", Status.SKIP, why)
            if plan["graceful"] is None:
                attempt("graceful", lambda: self._graceful(container, target, image, probed))
            else:
                with contextlib.suppress(requests.exceptions.RequestException):
                    container.stop(timeout=int(self.stop_timeout))
            if plan["lifespan"] is None:
                self._lifespan(container, attempt, settled)

    def _ws_routes(self, container, image: ImageUnderTest) -> tuple[list[probe.WsRoute], str]:
        """The route named by --ws-path or the image's label (and ""), else those in the app's own route table
        (and where they came from); no routes, and why there are none."""
        if image.ws_path:
            return [probe.WsRoute(image.ws_path, image.ws_path)], ""
        table = probe.route_table(probe.events(_all_logs(container)))
        if table is None:
            return [], "the probe wrote no route table (the app was never imported through it)"
        routes, why = probe.choose_ws_routes(table)
        return routes, why or f"the app's route table ({table.framework})"

    def _ws(self, target: Target, routes: list[probe.WsRoute], source: str) -> str:
        """Each route opened in turn; `source` names where discovered routes came from (empty: named by the user)."""
        details = []
        for route in routes:
            try:
                details.append(checks.ws(target, route.path, route.note))
            except CheckFailure as exc:
                fix = f"; found in {source}: name a route that opens with --ws-path or [tool.imgtool] ws-path"
                raise CheckFailure(f"{exc}{route.note}{fix if source else ''}") from None
        return "; ".join(details) + (f"; found in {source}" if source else "")

    def _lifespan(self, container, attempt, settled) -> None:
        """What the server sent the app, read from the probe's lines once the container has stopped."""
        container.reload()
        stopped = container.status in ("exited", "dead")
        outcome, detail = probe.lifespan_verdict(probe.events(_all_logs(container)), stopped=stopped)
        if outcome == probe.Lifespan.REFUSED:
            settled["lifespan"] = CheckResult(
                "lifespan",
                Status.NA,
                f"{NO_LIFESPAN} ({detail}); the server served it without",
                short=NO_LIFESPAN,
            )
        elif outcome == probe.Lifespan.RAN:
            attempt("lifespan", lambda: detail)
        else:
            attempt("lifespan", lambda: _raise(CheckFailure(detail)))

    def _graceful(self, container, target: Target, image: ImageUnderTest, probed: bool) -> str:
        """Requests held in the app and a burst of keep-alive clients across SIGTERM (toolkit/smoke/shutdown.py):
        each held one answered whole, no response cut or hung, a clean exit within the stop timeout."""
        path = target.probe_path
        try:
            with target.client() as client:
                expected = client.get(target.url(path)).status_code
        except httpx.HTTPError as exc:
            raise CheckFailure(f"GET {path} before SIGTERM: {type(exc).__name__}: {exc or 'no detail'}") from None
        burst = shutdown.Burst(target, path)
        if not burst.start():
            raise CheckFailure(f"the burst on {path} got no answer before SIGTERM: {burst.finish().problems[:1]}")
        held = [shutdown.Held(target, path, str(n)) for n in (1, 2)] if probed else []
        since = time.time() - 1
        for request in held:
            request.start()
        if held and not self._wait_for_holds(container, {request.ident for request in held}, since):
            burst.finish()
            raise CheckFailure(f"the held requests on {path} never reached the app")
        burst.signalled()
        signalled = time.monotonic()
        container.kill(signal="SIGTERM")
        time.sleep(0.2)
        late = checks.new_connection_after_signal(target)
        for request in held:
            request.join(timeout=request.milliseconds / 1000 + 10)
        try:
            exit_code = container.wait(timeout=self.stop_timeout)["StatusCode"]
        except requests.exceptions.RequestException:
            container.kill()
            burst.finish()
            raise CheckFailure(f"still running {self.stop_timeout:.0f}s after SIGTERM") from None
        took = time.monotonic() - signalled
        # The server is gone: its clients end by themselves (closed, refused) within a moment.
        burst.wait(timeout=5)
        tally = burst.finish()
        problems = [verdict for request in held if (verdict := request.verdict(expected))]
        problems += list(dict.fromkeys(tally.problems))[:3]
        clean = image.spec.clean_exit_codes if image.spec else DEFAULT_CLEAN_EXIT_CODES
        if exit_code not in clean:
            problems.append(f"exit code {exit_code} after SIGTERM (clean: {sorted(clean)})")
        if problems:
            raise CheckFailure("; ".join(problems))
        statuses = ", ".join(f"{count} x {status}" for status, count in sorted(tally.statuses.items()))
        if held:
            seconds = shutdown.HOLD_MS / 1000
            kept = f"{len(held)} requests held {seconds:g} s in the app across SIGTERM answered {expected} whole"
        else:
            kept = "no request held in the app (the image's command names no app for the probe to wrap)"
        return (
            f"{kept}; burst of {burst.clients} keep-alive clients on {path}: {tally.whole} answered whole "
            f"({statuses}), {tally.across} across the signal, {tally.closed_after_signal} closed unanswered after it; "
            f"new connection {late}; exit {exit_code} {took:.1f} s after SIGTERM"
        )

    def _wait_for_holds(self, container, idents: set[str], since: float, timeout: float = 10.0) -> bool:
        """Until the probe has logged every held request's arrival in the app (a real condition, not a sleep)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            logs = container.logs(since=since).decode(errors="replace")
            if idents <= probe.holds_seen(logs):
                return True
            time.sleep(0.05)
        return False

    def _tls_container(self, image: ImageUnderTest, attempt) -> None:
        assert image.spec is not None and image.app is not None
        authority = trustme.CA()
        with tempfile.TemporaryDirectory(prefix="imgtool-tls-") as certs:
            checks.write_certificate(authority, Path(certs))
            command = image.spec.tls_argv(image.app, f"{CERT_DIR}/cert.pem", f"{CERT_DIR}/key.pem")
            context = ssl.create_default_context()
            authority.configure_trust(context)
            with self.container(
                image,
                Role.TLS,
                command=command,
                environment={"HEALTH_SCHEME": "https"},
                volumes={certs: {"bind": CERT_DIR, "mode": "ro"}},
            ) as container:

                def h2_tls() -> str:
                    target = self.target(container, image, tls=context)
                    ok, detail = self.wait_healthy(container, target)
                    if not ok:
                        raise CheckFailure(f"TLS container: {detail}")
                    return checks.h2_tls(target)

                attempt("h2-tls", h2_tls)

    def _readonly_container(self, image: ImageUnderTest, attempt) -> None:
        hardened = {
            "read_only": True,
            "tmpfs": {"/tmp": "rw,size=64m"},
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
        }
        with self.container(image, Role.READONLY, **hardened) as container:

            def readonly() -> str:
                target = self.target(container, image)
                ok, detail = self.wait_healthy(container, target)
                if not ok:
                    raise CheckFailure(f"with --read-only --cap-drop ALL: {detail}")
                checks.http1(target)
                return "healthy and HTTP/1.1 with a read-only root, tmpfs /tmp, no capabilities, no-new-privileges"

            attempt("readonly", readonly)


def _raise(exc: Exception) -> str:
    raise exc


def _logs(container) -> str:
    return container.logs(tail=LOG_TAIL).decode(errors="replace")


def _all_logs(container) -> str:
    return container.logs().decode(errors="replace")
