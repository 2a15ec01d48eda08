"""The OpenAI-compatible backend: concurrent requests, our own retries, answers cached as they arrive.

The client's own retries are off (``max_retries=0``) so that every retry is ours: counted,
backed off exponentially with jitter, and honouring ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ur4rec_cli.errors import LLMError
from ur4rec_cli.features.llm.cleanup import parse_answer

if TYPE_CHECKING:
    from ur4rec_cli.features.llm.cache import AnswerCache
    from ur4rec_cli.features.llm.prompts import Prompt
    from ur4rec_cli.settings import LLMConfig

# Longest wait we accept from a Retry-After header before giving up on politeness.
_MAX_WAIT_S = 300.0
_MAX_BACKOFF_S = 60.0


class _Fatal(Exception):
    """An error that retrying can't fix: stops the whole run."""


class _Malformed(Exception):
    """A reply we can't use (bad JSON, no content): retried like a server error."""


@dataclass
class RunStats:
    """What one run of the backend did."""

    sent: int = 0  # HTTP requests made, retries included
    retries: int = 0
    done: int = 0
    failed: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0  # generation time (local backend)
    last_error: str = ""
    failed_keys: list[str] = field(default_factory=list)
    sent_keys: set[str] = field(default_factory=set)


def _scrub(message: str, secret: str) -> str:
    line = " ".join(str(message).split())
    if secret:
        line = line.replace(secret, "***")
    return line[:300]


def _retry_after(exc: Any) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(0.0, float(value) / divisor)
        except ValueError:
            try:
                from email.utils import parsedate_to_datetime

                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                return None
    return None


def _is_quota(exc: Any) -> bool:
    """A 429 that waiting won't fix: the account is out of credit (OpenAI's ``insufficient_quota``).

    Per-minute quotas ("Allocated quota exceeded", DashScope's ``Throttling.*``) are rate limits
    and are retried like any other 429.
    """
    body = getattr(exc, "body", None)
    blob = str(body if body is not None else exc).lower()
    if "insufficient_quota" in blob:
        return True
    return "quota" in blob and any(w in blob for w in ("billing", "arrear", "current quota", "credit"))


def run_openai(
    prompts: list["Prompt"],
    keys: list[str],
    cache: "AnswerCache",
    cfg: "LLMConfig",
    api_key: str,
    record_extra: dict[str, Any],
    on_update: Callable[[RunStats], None] | None = None,
) -> RunStats:
    """Send ``prompts`` (not yet cached), appending each answer to ``cache`` as it arrives.

    Raises :class:`LLMError` at once on errors retrying can't fix (400/401/403/404, quota).
    """
    return asyncio.run(_run(prompts, keys, cache, cfg, api_key, record_extra, on_update))


async def _run(prompts, keys, cache, cfg, api_key, record_extra, on_update) -> RunStats:
    import openai

    stats = RunStats()
    client = openai.AsyncOpenAI(
        api_key=api_key,
        base_url=cfg.base_url,
        timeout=cfg.timeout,
        max_retries=0,
    )
    sem = asyncio.Semaphore(cfg.concurrency)
    params = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
    # Prompts that used up their retries one after another, with no success in between: an
    # endpoint that is down or broken. Stop rather than spend hours backing off on every prompt.
    breaker = max(3, cfg.concurrency)
    streak = [0]

    def give_up(key: str) -> None:
        _fail(stats, key, on_update)
        streak[0] += 1
        if streak[0] >= breaker:
            raise _Fatal(
                f"giving up: {streak[0]} prompts in a row failed after {cfg.max_retries} retries each "
                f"(last: {stats.last_error}); {cached_phrase(cache)}"
            )

    # Set by the first error retrying can't fix: no task sends anything after it (a task waiting
    # for the semaphore would otherwise slip one more request out before it is cancelled).
    stopped = [False]

    async def ask(prompt: "Prompt", key: str) -> None:
        async with sem:
            try:
                await attempts(prompt, key)
            except _Fatal:
                stopped[0] = True
                raise

    async def attempts(prompt: "Prompt", key: str) -> None:
        attempt = 0
        while not stopped[0]:
            stats.sent += 1
            try:
                resp = await client.chat.completions.create(model=cfg.model, messages=prompt.messages(), **params)
                content = _content_of(resp)
                text = parse_answer(content, cfg.max_chars)
                if not text:
                    raise _Malformed("empty answer")
            except (openai.BadRequestError, openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as exc:
                raise _Fatal(_status_line(exc, cfg, api_key)) from None
            except openai.RateLimitError as exc:
                if _is_quota(exc):
                    raise _Fatal(_status_line(exc, cfg, api_key, "quota exhausted")) from None
                wait = _retry_after(exc)
                if not await _backoff(stats, attempt, cfg, wait, _status_line(exc, cfg, api_key)):
                    return give_up(key)
            except openai.APIStatusError as exc:
                if exc.status_code < 500 and exc.status_code not in (408, 409):
                    raise _Fatal(_status_line(exc, cfg, api_key)) from None
                if not await _backoff(stats, attempt, cfg, _retry_after(exc), _status_line(exc, cfg, api_key)):
                    return give_up(key)
            except (openai.APITimeoutError, openai.APIConnectionError) as exc:
                unreachable = None if isinstance(exc, openai.APITimeoutError) else _unreachable(exc)
                if unreachable and stats.done == 0:
                    # Refused (or no such host) before any answer: nothing is listening there, and
                    # retrying with backoff would only make the user wait a minute for this line.
                    raise _Fatal(f"cannot reach {cfg.base_url}: {unreachable} (is the server running?); {cached_phrase(cache)}") from None
                kind = "timeout" if isinstance(exc, openai.APITimeoutError) else "connection error"
                if not await _backoff(stats, attempt, cfg, None, f"{kind} at {cfg.base_url}"):
                    return give_up(key)
            except (_Malformed, openai.APIResponseValidationError, ValueError, AttributeError, TypeError, IndexError) as exc:
                if not await _backoff(stats, attempt, cfg, None, f"malformed reply from {cfg.base_url}: {_scrub(str(exc), api_key)[:120]}"):
                    return give_up(key)
            else:
                usage = getattr(resp, "usage", None)
                tin = int(getattr(usage, "prompt_tokens", 0) or 0)
                tout = int(getattr(usage, "completion_tokens", 0) or 0)
                cache.append(
                    {
                        "key": key,
                        "kind": prompt.kind,
                        "id": prompt.index,
                        "raw_id": prompt.raw_id,
                        "text": text,
                        "raw": content,
                        "usage": {"input": tin, "output": tout},
                        **record_extra,
                        "time": time.time(),
                    }
                )
                stats.done += 1
                streak[0] = 0
                stats.input_tokens += tin
                stats.output_tokens += tout
                if on_update:
                    on_update(stats)
                return None
            attempt += 1

    tasks = [asyncio.create_task(ask(p, k)) for p, k in zip(prompts, keys)]
    try:
        for fut in asyncio.as_completed(tasks):
            await fut
    except _Fatal as exc:
        raise LLMError(str(exc)) from None
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
    return stats


def _content_of(resp: Any) -> str:
    if isinstance(resp, (str, bytes)) or not getattr(resp, "choices", None):
        raise _Malformed("reply is not a chat completion")
    content = resp.choices[0].message.content
    if not isinstance(content, str):
        raise _Malformed("reply has no text content")
    return content


def _status_line(exc: Any, cfg: "LLMConfig", api_key: str, what: str | None = None) -> str:
    status = getattr(exc, "status_code", "?")
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message") or message
    detail = _scrub(message or str(exc), api_key)
    label = what or {401: "API key rejected", 403: "forbidden", 404: "model or endpoint not found", 400: "bad request"}.get(
        status, "HTTP error"
    )
    return f"LLM endpoint {cfg.base_url} (model {cfg.model}): {label} (HTTP {status}): {detail}"


async def _backoff(stats: RunStats, attempt: int, cfg: "LLMConfig", retry_after: float | None, why: str) -> bool:
    """Sleep before the next try; False when the retries are used up."""
    stats.last_error = why
    if attempt >= cfg.max_retries:
        return False
    stats.retries += 1
    delay = random.uniform(0.5, 1.0) * min(_MAX_BACKOFF_S, cfg.retry_base_delay * (2**attempt))
    if retry_after is not None:
        delay = max(delay, min(retry_after, _MAX_WAIT_S))
    await asyncio.sleep(delay)
    return True


def cached_phrase(cache: "AnswerCache") -> str:
    """What a failed run leaves: the cached answers and where, or that there are none yet."""
    if not cache.entries or not cache.path.is_file():
        return "nothing is cached yet"
    return f"{len(cache.entries):,} answers are cached in {cache.path}: rerun to resume"


def _unreachable(exc: BaseException) -> str | None:
    """'connection refused' / 'unknown host' when that is what lies under a connection error."""
    import socket

    seen: BaseException | None = exc
    for _ in range(12):  # openai -> httpx -> httpcore -> OSError
        if seen is None:
            return None
        if isinstance(seen, ConnectionRefusedError) or "connection refused" in str(seen).lower():
            return "connection refused"
        if isinstance(seen, socket.gaierror) or "name or service not known" in str(seen).lower():
            return "unknown host"
        seen = seen.__cause__ or seen.__context__
    return None


def _fail(stats: RunStats, key: str, on_update: Callable[[RunStats], None] | None) -> None:
    stats.failed += 1
    stats.failed_keys.append(key)
    if on_update:
        on_update(stats)
