#!/usr/bin/env python3
"""A hostile local process for the other-user tests: serves HTTP on a Unix socket or a loopback
TCP port, answers every request with a token of its own, and appends each request it receives
(request line, headers, body) to a log file, so a test can prove a victim sent it nothing.

Usage: squatter.py unix PATH LOG | squatter.py tcp PORT LOG
Prints "ready" on stdout once it listens."""
import json
import os
import socket
import sys
import threading

ANSWER = json.dumps({
    "access_token": "attacker-chosen-token",
    "token_type": "Bearer",
    "expires_at": "2099-01-01T00:00:00Z",
    "expires_in": 3600,
    "scope": None,
}).encode()


def serve(conn, log):
    with conn:
        data = b""
        conn.settimeout(5)
        try:
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        if data:  # a bare connect (a liveness probe) carries nothing
            with open(log, "ab") as f:
                f.write(data + b"\n--\n")
        conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                     + str(len(ANSWER)).encode() + b"\r\nconnection: close\r\n\r\n" + ANSWER)


def main():
    kind, where, log = sys.argv[1:4]
    if kind == "unix":
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(where)
        os.chmod(where, 0o777)
    else:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", int(where)))
    server.listen(16)
    print("ready", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn, log), daemon=True).start()


main()
