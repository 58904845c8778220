"""A program that takes a token each time a line arrives on stdin, for ask first's tests.

Prints one line per take: the HTTP status and, for an error, its code ("200 ok",
"403 not_approved"); never the token.
"""
import json
import os
import sys
import urllib.error
import urllib.request

for _ in sys.stdin:
    request = urllib.request.Request(
        os.environ["URL"], headers={"Authorization": "Bearer " + os.environ["KEY"]}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            took = json.load(answer).get("access_token") == os.environ["EXPECT"]
            print(answer.status, "ok" if took else "wrong-token", flush=True)
    except urllib.error.HTTPError as e:
        body = json.load(e)
        print(e.code, body.get("error"), body.get("message", "").replace("\n", " "), flush=True)
