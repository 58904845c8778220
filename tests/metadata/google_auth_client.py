#!/usr/bin/env python3
"""Google's own auth library, unchanged, finding its credentials on a metadata server.

    GCE_METADATA_HOST=127.0.0.1:PORT GCE_METADATA_IP=127.0.0.1:PORT google_auth_client.py

`google.auth.default()` pings the metadata server (GCE_METADATA_IP), then takes Compute Engine
credentials from it (GCE_METADATA_HOST). Each line on stdin asks for a refresh; after each, one
JSON line on stdout: {"kind", "email", "token", "expiry"}. Errors go to stderr, exit 1.
"""
import json
import sys

import google.auth
import google.auth.transport.requests


def main() -> int:
    credentials, _project = google.auth.default()
    request = google.auth.transport.requests.Request()
    for _ in sys.stdin:
        credentials.refresh(request)
        print(json.dumps({
            "kind": type(credentials).__module__ + "." + type(credentials).__name__,
            "email": credentials.service_account_email,
            "token": credentials.token,
            "expiry": credentials.expiry.isoformat() if credentials.expiry else None,
        }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
