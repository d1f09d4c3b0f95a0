#!/usr/bin/env python3
"""A tiny HTTP/1.1 backend for the examples: answers every request with JSON
naming itself, the path and the routing key it saw. Usage: backend.py PORT NAME"""
import http.server
import json
import sys

NAME = sys.argv[2]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self):
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"service": NAME, "path": self.path,
                           "routing_key": self.headers.get("x-turnout-routing-key")}) + "\n"
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
