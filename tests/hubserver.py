"""A small Hugging Face Hub look-alike on 127.0.0.1 for tests: serves repos' files the way the real client reads
them (HEAD with ETag / X-Repo-Commit, ranged GETs for safetensors headers, the Hub's error codes for missing
repos, missing files and gated repos). The real ``huggingface_hub`` client talks to it through ``HF_ENDPOINT``.
"""

from __future__ import annotations

import hashlib
import json
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1}


def safetensors(tensors: dict[str, tuple[str, list[int]]], data: bool = False) -> bytes:
    """A safetensors file: 8-byte little-endian header length, the JSON header, then the data (zeros). With
    `data` False the data section is left out: the client only reads the header and the Hub never sends more."""
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        n = DTYPE_BYTES[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + (b"\0" * offset if data else b"")


class Hub:
    """``repos``: repo id -> {path: bytes}; ``gated``: repo ids that need a token. Use as a context manager."""

    def __init__(self, repos: dict[str, dict[str, bytes]], gated: set[str] | None = None, token: str = "hf_test"):
        self.repos, self.gated, self.token = repos, gated or set(), token
        self.requests: list[str] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None, head=False):
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head and body:
                    self.wfile.write(body)

            def _error(self, code: int, error_code: str, message: str, head: bool):
                self._send(code, json.dumps({"error": message}).encode(),
                           {"X-Error-Code": error_code, "X-Error-Message": message,
                            "Content-Type": "application/json"}, head)

            def _serve(self, head: bool):
                hub.requests.append(f"{self.command} {self.path}")
                path = unquote(self.path.split("?")[0]).lstrip("/")
                parts = path.split("/")
                if len(parts) < 5 or parts[2] != "resolve":
                    return self._error(404, "EntryNotFound", "not a file route", head)
                repo, filename = "/".join(parts[:2]), "/".join(parts[4:])
                if repo not in hub.repos:
                    return self._error(401, "RepoNotFound", "Repository Not Found", head)
                if repo in hub.gated and self.headers.get("authorization") != f"Bearer {hub.token}":
                    return self._error(401, "GatedRepo", f"Access to model {repo} is restricted.", head)
                files = hub.repos[repo]
                if filename not in files:
                    return self._error(404, "EntryNotFound", f"{filename} does not exist", head)
                body = files[filename]
                etag = hashlib.sha256(body).hexdigest()
                headers = {"ETag": f'"{etag}"', "X-Repo-Commit": COMMIT, "Accept-Ranges": "bytes",
                           "Content-Type": "application/octet-stream"}
                wanted = self.headers.get("range")
                if wanted and wanted.startswith("bytes="):
                    start_s, _, end_s = wanted[6:].partition("-")
                    start = int(start_s)
                    end = min(int(end_s) if end_s else len(body) - 1, len(body) - 1)
                    chunk = body[start:end + 1]
                    headers["Content-Range"] = f"bytes {start}-{start + len(chunk) - 1}/{len(body)}"
                    return self._send(206, chunk, headers, head)
                return self._send(200, body, headers, head)

            def do_HEAD(self):
                self._serve(head=True)

            def do_GET(self):
                self._serve(head=False)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
