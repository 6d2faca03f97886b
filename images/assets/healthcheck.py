"""Docker HEALTHCHECK without curl, read at run time from the environment (no rebuild to change it).

HEALTH_PATH set: GET http(s)://127.0.0.1:$PORT$HEALTH_PATH must answer 2xx.
HEALTH_PATH unset or empty: the app has no health route; GET / must get any HTTP answer below 500
(a 404 or a redirect still proves the server and the app answer).
Redirects are not followed. The Host header is $HEALTH_HOST (default `localhost`, which Django's
default ALLOWED_HOSTS accepts with DEBUG on); set it to one of the app's allowed hosts otherwise.
"""

import http.client
import os
import ssl
import sys


def healthy(status, configured):
    return 200 <= status < 300 if configured else status < 500


def main():
    scheme = os.environ.get("HEALTH_SCHEME", "http")
    port = int(os.environ.get("PORT", "8000"))
    path = os.environ.get("HEALTH_PATH", "").strip()
    host = os.environ.get("HEALTH_HOST", "").strip() or "localhost"
    url = f"{scheme}://127.0.0.1:{port}{path or '/'}"
    if scheme == "https":
        # Over TLS the certificate names the service, not 127.0.0.1; liveness is what is checked here.
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ssl._create_unverified_context())
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path or "/", headers={"Host": f"{host}:{port}", "User-Agent": "imgtool-healthcheck"})
        status = connection.getresponse().status
    except Exception as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        connection.close()
    if not healthy(status, bool(path)):
        rule = "2xx" if path else "below 500"
        print(f"unhealthy: {url} answered {status} (needs {rule})", file=sys.stderr)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
