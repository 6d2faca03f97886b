"""Docker HEALTHCHECK without curl: GET http(s)://127.0.0.1:$PORT$HEALTH_PATH must answer 200."""

import os
import ssl
import sys
import urllib.request


def main():
    scheme = os.environ.get("HEALTH_SCHEME", "http")
    url = f"{scheme}://127.0.0.1:{os.environ.get('PORT', '8000')}{os.environ.get('HEALTH_PATH', '/health')}"
    # Over TLS the certificate names the service, not 127.0.0.1; liveness is what is checked here.
    context = ssl._create_unverified_context() if scheme == "https" else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as response:
            ok = response.status == 200
    except Exception as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
