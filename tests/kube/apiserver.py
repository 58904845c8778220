#!/usr/bin/env python3
"""A Kubernetes API server stand-in for kubectl, over TLS (client-go runs exec credential
plugins only for TLS servers), that trusts the tokens a provider still honours.

    apiserver.py --dir DIR --check-url URL

Makes a self-signed certificate for 127.0.0.1 in DIR (cert.pem, the kubeconfig's
certificate-authority), serves HTTPS on a free loopback port and writes the port to DIR/port
once it listens. Each request's bearer token is checked by asking URL with it (the provider's
profile endpoint: 200 means valid), appended to DIR/seen (one line per request, "-" when none),
and answered with /version's JSON, or 401 with a Status.
"""
import argparse
import http.server
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--check-url", required=True)
    args = parser.parse_args()
    cert, key = os.path.join(args.dir, "cert.pem"), os.path.join(args.dir, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", key, "-out", cert, "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    seen = os.path.join(args.dir, "seen")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):  # stderr stays quiet
            pass

        def do_GET(self):
            auth = self.headers.get("Authorization") or ""
            token = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
            with open(seen, "a") as f:
                f.write((token or "-") + "\n")
            if token and valid(token):
                body = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-tokenwarden-test"}
                status = 200
            else:
                body = {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "Unauthorized", "code": 401}
                status = 401
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    def valid(token: str) -> bool:
        request = urllib.request.Request(args.check_url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port_file = os.path.join(args.dir, "port")
    with open(port_file + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(port_file + ".tmp", port_file)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
