"""A real HTTP server on 127.0.0.1 that speaks the TMDB endpoints `ur4rec clip --fetch-posters` uses.

    GET /3/search/movie?query=&year=&api_key=   (or Authorization: Bearer <token>)
        -> {"results": [{"id", "title", "original_title", "release_date", "poster_path"}]}
    GET /img/<poster_path>                       -> JPEG bytes

Every request is logged in ``server.requests`` so tests can count them; ``fail_next`` makes the
next N search requests answer 429 (with Retry-After: 0) to exercise the retries.
"""

from __future__ import annotations

import io
import json
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def jpeg_bytes(color: tuple[int, int, int], size: tuple[int, int] = (40, 60)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="JPEG")
    return buf.getvalue()


@dataclass
class Movie:
    id: int
    title: str
    release_date: str
    poster_path: str | None


@dataclass
class TMDBState:
    api_key: str
    movies: list[Movie]
    images: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _norm(s: str) -> str:
    return "".join(ch for ch in s.lower() if ch.isalnum())


class _Handler(BaseHTTPRequestHandler):
    state: TMDBState

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, ctype: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(code, json.dumps(obj).encode(), "application/json", headers)

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        st = self.state
        url = urllib.parse.urlsplit(self.path)
        with st.lock:
            st.requests.append(self.path)
        if url.path == "/3/search/movie":
            params = dict(urllib.parse.parse_qsl(url.query))
            auth = self.headers.get("Authorization", "")
            if params.get("api_key") != st.api_key and auth != f"Bearer {st.api_key}":
                return self._json(401, {"status_code": 7, "status_message": "Invalid API key"})
            with st.lock:
                if st.fail_next > 0:
                    st.fail_next -= 1
                    return self._json(429, {"status_code": 25}, {"Retry-After": "0"})
            query = _norm(params.get("query", ""))
            year = params.get("year")
            hits = [
                m for m in st.movies
                if query and query in _norm(m.title) and (year is None or m.release_date.startswith(year))
            ]
            results = [
                {"id": m.id, "title": m.title, "original_title": m.title, "release_date": m.release_date, "poster_path": m.poster_path}
                for m in hits
            ]
            return self._json(200, {"page": 1, "results": results, "total_results": len(results)})
        if url.path.startswith("/img/"):
            key = "/" + url.path[len("/img/"):]
            data = st.images.get(key)
            if data is None:
                return self._json(404, {"status_code": 34})
            return self._send(200, data, "image/jpeg")
        return self._json(404, {"status_code": 34, "status_message": "not found"})


class TMDBServer:
    """Context manager: ``with TMDBServer(state) as srv: srv.base_url, srv.image_url``."""

    def __init__(self, state: TMDBState) -> None:
        handler = type("Handler", (_Handler,), {"state": state})
        self.state = state
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/3"

    @property
    def image_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/img"

    def search_requests(self) -> list[str]:
        return [r for r in self.state.requests if r.startswith("/3/search/movie")]

    def __enter__(self) -> "TMDBServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)
