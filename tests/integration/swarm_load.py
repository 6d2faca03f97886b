"""Load for a rolling update, run inside a container on the stack's overlay network (stdlib only).

    python swarm_load.py HOST PORT CLIENTS MAX_SECONDS STOP_FILE

CLIENTS threads each send `GET /slow?ms=K` (K varies per request, 20-79 ms) on a new connection, as a
proxy without connection pooling would: the service name resolves (dnsrr) to every task, and
`socket.create_connection` tries the next address when one refuses. A request is never retried.
Runs until STOP_FILE exists (or MAX_SECONDS pass), then prints one JSON line:
sent, completed (200 with exactly the expected body), failed (an error or another status),
damaged (200 with another body), the failures by kind, and the seconds it ran.
"""

import http.client
import json
import os
import sys
import threading
import time


def main() -> None:
    host, port, clients, limit, stop_file = sys.argv[1:6]
    port, clients, limit = int(port), int(clients), float(limit)
    lock = threading.Lock()
    counts = {"sent": 0, "completed": 0, "failed": 0, "damaged": 0}
    kinds: dict[str, int] = {}
    stop = threading.Event()

    def client(number: int) -> None:
        sequence = 0
        while not stop.is_set():
            ms = 20 + (number * 7 + sequence) % 60
            sequence += 1
            with lock:
                counts["sent"] += 1
            kind, reason = "completed", None
            try:
                connection = http.client.HTTPConnection(host, port, timeout=15)
                connection.request("GET", f"/slow?ms={ms}", headers={"Connection": "close"})
                response = connection.getresponse()
                body = response.read()
                connection.close()
                if response.status != 200:
                    kind, reason = "failed", f"HTTP {response.status}"
                elif body != f"slept {ms} ms\n".encode():
                    kind, reason = "damaged", "wrong body"
            except Exception as exc:
                kind, reason = "failed", type(exc).__name__
            with lock:
                counts[kind] += 1
                if reason:
                    kinds[reason] = kinds.get(reason, 0) + 1

    threads = [threading.Thread(target=client, args=(number,)) for number in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    print("swarm_load: started", flush=True)
    while time.monotonic() - started < limit and not os.path.exists(stop_file):
        time.sleep(0.1)
    stop.set()
    for thread in threads:
        thread.join()
    print(json.dumps({**counts, "failures": kinds, "seconds": round(time.monotonic() - started, 2)}), flush=True)


if __name__ == "__main__":
    main()
