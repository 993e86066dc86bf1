#!/usr/bin/env python3
"""Exit 0 when an AEGIS instance answers /health with 200, 1 otherwise.

Used by the Docker HEALTHCHECK (no argument: this container, port $PORT) and by
deploy/deploy.sh (the published URL as argument). The Host header is the first of
ALLOWED_HOSTS, so the probe passes Django's host check in production.
"""

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    url = (
        sys.argv[1]
        if len(sys.argv) > 1
        else f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/health"
    )
    hosts = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "").split(",")]
    hosts = [h.lstrip(".") for h in hosts if h and h != "*"]
    if not url.startswith(("http://", "https://")):
        print(f"not an http(s) URL: {url}", file=sys.stderr)
        return 2
    request = urllib.request.Request(url, headers={"Host": hosts[0]} if hosts else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=4) as response:  # noqa: S310
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
