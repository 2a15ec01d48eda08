"""Movie posters from TMDB for items the user has no image of: search, download, cache.

Resumable: every lookup (hits and misses) is appended to ``<home>/cache/posters/lookups.jsonl``
and every poster is written to ``<home>/cache/posters/<raw item id>.jpg`` through a temp file, so
a rerun (or a run after an interruption) only asks TMDB about what it has not seen yet.
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ur4rec_cli.diskspace import append_line
from ur4rec_cli.errors import ConfigError, DownloadError

POSTER_DIR = ("posters",)
LOOKUPS = "lookups.jsonl"
TIMEOUT_S = 30.0
MAX_RETRIES = 4
# After this many consecutive failed requests the service is taken as unreachable.
MAX_CONSECUTIVE_FAILURES = 5

# ML titles put articles last ("Usual Suspects, The"); TMDB and CLIP read them first.
_ARTICLE = re.compile(r"^(?P<rest>.+),\s*(?P<art>The|A|An|Les|Le|La|L'|Il|Das|Der|Die|El|Los|Las|Det|Den)$", re.I)
_TRAILING_PARENS = re.compile(r"^(?P<main>.*?)\s*\((?P<alt>[^()]*)\)\s*$")


def safe_name(raw_id: str) -> str:
    """A file-name-safe form of a raw item id (ML ids are digits and stay as they are)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(raw_id)) or "_"


def natural_title(title: str | None) -> str:
    """'Usual Suspects, The' -> 'The Usual Suspects'; alternate titles in parentheses kept."""
    title = (title or "").strip()
    main, alt = split_alternate(title)
    m = _ARTICLE.match(main)
    if m:
        art = m.group("art")
        main = f"{art}{'' if art.endswith(chr(39)) else ' '}{m.group('rest')}"
    return f"{main} ({alt})" if alt else main


def split_alternate(title: str) -> tuple[str, str | None]:
    """'Shanghai Triad (Yao a yao ...)' -> ('Shanghai Triad', 'Yao a yao ...')."""
    m = _TRAILING_PARENS.match(title)
    if m and m.group("main"):
        return m.group("main").strip(), m.group("alt").strip() or None
    return title, None


def _norm(text: str) -> str:
    text = natural_title(text).lower()
    text = re.sub(r"^(the|a|an)\s+", "", text)
    return re.sub(r"[^a-z0-9]+", " ", text).strip()


@dataclass
class PosterReport:
    """What a fetch did; ``unmatched`` lists the titles TMDB had no poster for."""

    requested: int = 0
    downloaded: int = 0
    already_cached: int = 0
    lookups_cached: int = 0
    requests: int = 0
    errors: int = 0
    unmatched: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "downloaded": self.downloaded,
            "already_cached": self.already_cached,
            "lookups_cached": self.lookups_cached,
            "requests": self.requests,
            "errors": self.errors,
            "unmatched": list(self.unmatched),
        }


class _RateLimiter:
    """At most ``rate`` calls per second (evenly spaced)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_at = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval


class _Http:
    """GET with a rate limit, retries on 429/5xx/timeouts, and one-line errors."""

    def __init__(self, rate: float, key: str) -> None:
        self.limiter = _RateLimiter(rate)
        self.key = key
        # TMDB v4 read tokens are JWTs (Bearer); v3 keys are 32 hex chars (query parameter).
        self.bearer = key.count(".") == 2 and len(key) > 40
        self.requests = 0
        self.consecutive_failures = 0

    def get(self, url: str, *, auth: bool) -> bytes:
        headers = {"Accept": "application/json", "User-Agent": "ur4rec"}
        if auth:
            if self.bearer:
                headers["Authorization"] = f"Bearer {self.key}"
            else:
                sep = "&" if "?" in url else "?"
                url = f"{url}{sep}api_key={urllib.parse.quote(self.key)}"
        shown = _redact(url)
        last = ""
        for attempt in range(MAX_RETRIES + 1):
            self.limiter.wait()
            self.requests += 1
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S) as resp:
                    body = resp.read()
                self.consecutive_failures = 0
                return body
            except urllib.error.HTTPError as exc:
                if exc.code in (401, 403):
                    raise ConfigError(f"TMDB rejected the API key (HTTP {exc.code}) at {shown}; check TMDB_API_KEY") from None
                if exc.code == 404:
                    self.consecutive_failures = 0
                    raise _NotFound(shown) from None
                if exc.code != 429 and exc.code < 500:
                    raise DownloadError(f"TMDB answered HTTP {exc.code} for {shown}") from None
                last = f"HTTP {exc.code}"
                retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
                retry_after = None
            if attempt < MAX_RETRIES:
                time.sleep(retry_after if retry_after is not None else min(8.0, 0.5 * 2**attempt))
        self.consecutive_failures += 1
        if self.consecutive_failures >= MAX_CONSECUTIVE_FAILURES:
            raise DownloadError(f"TMDB is unreachable ({last}) at {shown}; fetched posters so far are kept, rerun to resume")
        raise _Transient(f"{shown}: {last}")


class _NotFound(Exception):
    pass


class _Transient(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    try:
        return min(30.0, max(0.0, float(value))) if value else None
    except ValueError:
        return None


def _redact(url: str) -> str:
    return re.sub(r"(api_key=)[^&]+", r"\1***", url)


def poster_dir(store_home: Path) -> Path:
    return Path(store_home).joinpath("cache", *POSTER_DIR)


def poster_path(store_home: Path, raw_id: str) -> Path:
    """Where the fetched poster of an item lives (whether or not it exists yet)."""
    return poster_dir(store_home) / f"{safe_name(raw_id)}.jpg"


def _read_lookups(path: Path) -> dict[str, dict[str, Any]]:
    # Last entry per item wins; a torn last line (killed writer) is ignored.
    out: dict[str, dict[str, Any]] = {}
    try:
        lines = path.read_text("utf-8").splitlines()
    except FileNotFoundError:
        return out
    except OSError as exc:
        raise DownloadError(f"cannot read the TMDB lookup cache {path}: {exc}") from None
    for line in lines:
        try:
            rec = json.loads(line)
            out[str(rec["item"])] = rec
        except (ValueError, KeyError, TypeError):
            continue
    return out


def _choose(results: list[dict[str, Any]], title: str, year: int | None) -> dict[str, Any] | None:
    """Best result with a poster: exact title and year, then year within one, then exact title."""
    want = _norm(title)
    with_poster = [r for r in results if isinstance(r, dict) and r.get("poster_path")]

    def year_of(r: dict[str, Any]) -> int | None:
        m = re.match(r"(\d{4})", str(r.get("release_date") or ""))
        return int(m.group(1)) if m else None

    def close(r: dict[str, Any]) -> bool:
        y = year_of(r)
        return year is None or (y is not None and abs(y - year) <= 1)

    def same_title(r: dict[str, Any]) -> bool:
        return want in {_norm(str(r.get("title") or "")), _norm(str(r.get("original_title") or ""))}

    for test in (lambda r: same_title(r) and close(r), close, same_title):
        for r in with_poster:
            if test(r):
                return r
    return None


def _queries(title: str, year: int | None) -> list[tuple[str, int | None]]:
    main, alt = split_alternate(title)
    main = natural_title(main)
    out: list[tuple[str, int | None]] = [(main, year)]
    if alt:
        out.append((natural_title(alt), year))
    if year is not None:
        out.append((main, None))
    return out


def fetch_posters(settings: Any, items: Iterable[tuple[str, dict[str, Any]]], *, progress: Any = None) -> PosterReport:
    """Look each (raw id, metadata) up on TMDB and download its poster into the poster cache.

    Items whose poster file already exists are skipped; earlier lookups (misses too) are reused.
    """
    key = settings.tmdb_api_key()
    if key is None:
        raise ConfigError("--fetch-posters needs a TMDB API key: set TMDB_API_KEY (or clip.tmdb_api_key in the config)")
    cfg = settings.clip
    home = Path(settings.home)
    folder = poster_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    lookups_path = folder / LOOKUPS
    lookups = _read_lookups(lookups_path)
    http = _Http(cfg.tmdb_rate, key.get_secret_value())
    report = PosterReport()
    base = cfg.tmdb_base_url.rstrip("/")
    image_base = cfg.tmdb_image_url.rstrip("/")
    items = list(items)
    task = progress.add_task("TMDB posters", total=len(items), status="") if progress is not None else None

    with open(lookups_path, "a", encoding="utf-8") as log:
        for raw_id, meta in items:
            report.requested += 1
            if task is not None:
                progress.advance(task)
            target = poster_path(home, raw_id)
            if target.is_file():
                report.already_cached += 1
                continue
            title = (meta.get("title") or "").strip()
            year = meta.get("year") if isinstance(meta.get("year"), int) else None
            shown = f"{title or '?'} ({year})" if year else (title or f"item {raw_id}")
            if not title or title.lower() in {"unknown", "unkonwn"}:
                report.unmatched.append(shown)
                continue
            rec = lookups.get(str(raw_id))
            if rec is not None and rec.get("title_query") == title and rec.get("year_query") == year:
                report.lookups_cached += 1
            else:
                try:
                    rec = _search(http, base, str(raw_id), title, year)
                except _Transient:
                    report.errors += 1
                    continue
                append_line(log, lookups_path, json.dumps(rec, ensure_ascii=False) + "\n")  # a full disk: one line, no torn record
                lookups[str(raw_id)] = rec
            if not rec.get("poster_path"):
                report.unmatched.append(shown)
                continue
            try:
                data = http.get(f"{image_base}/{str(rec['poster_path']).lstrip('/')}", auth=False)
            except (_Transient, _NotFound):
                report.errors += 1
                continue
            if not _is_image(data):
                report.errors += 1
                continue
            _atomic_write(target, data)
            report.downloaded += 1
    report.requests = http.requests
    return report


def _search(http: _Http, base: str, raw_id: str, title: str, year: int | None) -> dict[str, Any]:
    """One lookup record: the chosen TMDB result, or a miss (poster_path None)."""
    for query, qyear in _queries(title, year):
        params = {"query": query, "include_adult": "false"}
        if qyear is not None:
            params["year"] = str(qyear)
        try:
            body = http.get(f"{base}/search/movie?{urllib.parse.urlencode(params)}", auth=True)
        except _NotFound as exc:
            raise DownloadError(f"TMDB search endpoint not found: {exc}") from None
        try:
            results = json.loads(body).get("results") or []
        except (ValueError, AttributeError):
            raise DownloadError(f"TMDB answered something that is not JSON for {query!r} at {base}/search/movie") from None
        best = _choose(results, natural_title(title), year)
        if best is not None:
            return {
                "item": raw_id,
                "title_query": title,
                "year_query": year,
                "tmdb_id": best.get("id"),
                "tmdb_title": best.get("title"),
                "release_date": best.get("release_date"),
                "poster_path": best.get("poster_path"),
            }
    return {"item": raw_id, "title_query": title, "year_query": year, "tmdb_id": None, "poster_path": None}


def _is_image(data: bytes) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.verify()
        return True
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return False


def _atomic_write(path: Path, data: bytes) -> None:
    from ur4rec_cli.store import atomic_write_bytes

    atomic_write_bytes(path, data)
