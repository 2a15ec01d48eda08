"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions protocol, with scriptable faults.

    POST /v1/chat/completions   {"model", "messages": [{"role", "content"}...], ...}
        -> {"id", "object": "chat.completion", "created", "model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}

What the official ``openai`` client sends and expects, nothing more. Faults are queued with
:meth:`ChatServer.fail_next` and consumed one per request, in arrival order (optionally only by
requests whose prompt contains a given text):

    Fault.status(429, retry_after=0.3)   # rate limited, with a Retry-After header
    Fault.status(500)                    # server error
    Fault.slow(2.0)                      # sleep longer than the client timeout, then answer
    Fault.content("```\\ntext\\n```")      # a reply with malformed/odd content
    Fault.raw(b"not json")               # a 200 whose body is not JSON

A request whose ``Authorization`` header is not ``Bearer <api_key>`` gets a 401 whose message
echoes the key it received (as some real servers do), so tests can prove the client scrubs it.

Every request is counted per prompt (the user message's content) in ``requests`` (all of them)
and ``answered`` (200s with a completion), and logged with its time in ``log``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator


@dataclass
class Fault:
    kind: str  # "status" | "slow" | "content" | "raw"
    code: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    content: str = ""
    body: bytes = b""
    match: str | None = None  # only a request whose prompt contains this text consumes the fault

    @classmethod
    def status(cls, code: int, retry_after: float | None = None, message: str | None = None, match: str | None = None) -> "Fault":
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return cls("status", code=code, headers=headers, content=message or "", match=match)

    @classmethod
    def slow(cls, seconds: float, match: str | None = None) -> "Fault":
        return cls("slow", seconds=seconds, match=match)

    @classmethod
    def reply(cls, content: str, match: str | None = None) -> "Fault":
        return cls("content", content=content, match=match)

    @classmethod
    def raw(cls, body: bytes, match: str | None = None) -> "Fault":
        return cls("raw", body=body, match=match)


@dataclass
class Request:
    prompt: str  # the user message's content
    time: float  # time.monotonic() on arrival
    status: int
    body: dict[str, Any]
    auth: str


def default_answer(prompt: str) -> str:
    """A deterministic, prompt-specific answer."""
    first = prompt.splitlines()[0] if prompt else ""
    return f"Generated text for {first} [{hashlib.sha256(prompt.encode()).hexdigest()[:8]}]."


class ChatServer:
    """State of one server; use :func:`chat_server` to run it."""

    def __init__(self, api_key: str = "sk-test-key", delay: float = 0.0, answer: Callable[[str], str] = default_answer) -> None:
        self.api_key = api_key
        self.delay = delay  # seconds before every reply (a slow endpoint)
        self.answer = answer
        self.requests: Counter[str] = Counter()
        self.answered: Counter[str] = Counter()
        self.log: list[Request] = []
        self.faults: list[Fault] = []
        self.hold_after: int | None = None  # after this many answers, hold every request until released
        self.release = threading.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        with self.lock:
            self.faults.extend([fault] * times)

    def times_of(self, prompt: str) -> list[float]:
        return [r.time for r in self.log if r.prompt == prompt]

    def _take_fault(self, prompt: str) -> Fault | None:
        with self.lock:
            for i, f in enumerate(self.faults):
                if f.match is None or f.match in prompt:
                    return self.faults.pop(i)
        return None


class _Handler(BaseHTTPRequestHandler):
    server_state: ChatServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout, killed)
            self.close_connection = True

    def _error(self, code: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        err = {"error": {"message": message, "type": kind, "param": None, "code": kind}}
        self._send(code, json.dumps(err).encode(), headers)

    def do_POST(self) -> None:  # noqa: N802 (http.server API)
        st = self.server_state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"no route {self.path}", "not_found")
        try:
            body = json.loads(raw)
            messages = body["messages"]
            prompt = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        except (ValueError, KeyError, StopIteration, TypeError):
            return self._error(400, "malformed request", "invalid_request_error")
        auth = self.headers.get("Authorization", "")
        with st.lock:
            st.requests[prompt] += 1
            st.in_flight += 1
            st.max_in_flight = max(st.max_in_flight, st.in_flight)
            req = Request(prompt, time.monotonic(), 0, body, auth)
            st.log.append(req)
        try:
            self._answer(st, req, prompt, body, auth)
        finally:
            with st.lock:
                st.in_flight -= 1

    def _answer(self, st: ChatServer, req: Request, prompt: str, body: dict[str, Any], auth: str) -> None:
        if auth != f"Bearer {st.api_key}":
            req.status = 401
            given = auth.removeprefix("Bearer ")
            return self._error(401, f"Incorrect API key provided: {given}. You can find your API key in your account.", "invalid_api_key")
        if st.delay:
            time.sleep(st.delay)
        with st.lock:
            hold = st.hold_after is not None and sum(st.answered.values()) >= st.hold_after
        if hold:
            st.release.wait(30)
        fault = st._take_fault(prompt)
        content = st.answer(prompt)
        if fault is not None:
            if fault.kind == "status":
                req.status = fault.code
                kinds = {429: "rate_limit_exceeded", 400: "invalid_request_error", 403: "permission_denied", 404: "model_not_found"}
                message = fault.content or f"simulated HTTP {fault.code}"
                return self._error(fault.code, message, kinds.get(fault.code, "server_error"), fault.headers)
            if fault.kind == "slow":
                time.sleep(fault.seconds)
            elif fault.kind == "raw":
                req.status = 200
                return self._send(200, fault.body)
            elif fault.kind == "content":
                content = fault.content
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in body["messages"]) // 4
        completion_tokens = max(1, len(content) // 4)
        reply = {
            "id": f"chatcmpl-{len(st.log)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "test-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }
        req.status = 200
        with st.lock:
            st.answered[prompt] += 1
        self._send(200, json.dumps(reply).encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (timeout, cancelled request, killed process) is normal here.
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            super().handle_error(request, client_address)


@contextmanager
def chat_server(**kwargs: Any) -> Iterator[ChatServer]:
    """Run a :class:`ChatServer` on 127.0.0.1 (a free port) for the duration of the block."""
    state = ChatServer(**kwargs)
    handler = type("Handler", (_Handler,), {"server_state": state})
    httpd = _Server(("127.0.0.1", 0), handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
