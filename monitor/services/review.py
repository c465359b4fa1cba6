"""Review workflow: change a violation's status with an audit trail; licence a domain.

Statuses: ``open`` (new), ``confirmed`` (a person agrees it infringes),
``dismissed`` (not a copy, or not worth pursuing) and ``licensed`` (the use is
permitted). Every change writes a :class:`~monitor.store.models.ViolationEvent`
(who, when in UTC, from, to, note). Dismissed and licensed violations are not
alerted (pending mail is skipped) and later matches of the same protected
image at the same place inherit the status (:mod:`monitor.store.candidates`).
The rows are written by :mod:`monitor.store.violations`.

Marking ``licensed`` with ``allow_domain`` also adds the candidate's host to
the ``allow_domains`` of the ``licensed-domains`` rule in ``rules/licensed.toml``
(created when missing), so other copies on that host are allow-listed. The host is
that of the image URL, else of the page it was seen on; it must be a DNS name or an IP
address (:func:`web_host`). A candidate from a file or an upload (``upload:<sha256>``)
with no such page has none, and the change is refused with the reason
(:class:`~monitor.errors.RuleError`, 422), nothing written.
"""

from __future__ import annotations

import ipaddress
import json
import re
import tempfile
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from monitor.errors import InvalidStatus, NotFound, RuleError
from monitor.matching.rules import load_rules
from monitor.services.workspace import DEFAULT_RULES, Workspace
from monitor.store import Store, write_atomic
from monitor.store import violations as repo
from monitor.store.models import Candidate, Violation, ViolationEvent

STATUSES = ("open", "confirmed", "dismissed", "licensed")
"""Every review status, in workflow order."""
LICENSED_FILE = "licensed.toml"
LICENSED_RULE = "licensed-domains"
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def set_status(ws: Workspace, violation_id: int, status: str, actor: str, note: str = "",
               *, allow_domain: bool = False) -> Violation:
    """Set violation ``violation_id`` to ``status``, record who/when/why; return the row.

    ``actor`` is free text (a user name, an API key's name). With ``allow_domain``
    (only with ``licensed``) the candidate's host (:func:`candidate_host`) is added to
    the licensed-domains allow-list rule.

    Raises:
        InvalidStatus: ``status`` is unknown (the message lists the allowed ones),
            or ``allow_domain`` is used with another status.
        NotFound: no violation has this id.
        RuleError: the candidate has no web host (a file or an upload seen on no web
            page), or the rule file cannot be written validly; nothing is changed.
    """
    status = status.strip().lower()
    if status not in STATUSES:
        raise InvalidStatus(f"unknown status {status!r}; allowed: {', '.join(STATUSES)}")
    if allow_domain and status != "licensed":
        raise InvalidStatus("--allow-domain only goes with status 'licensed'")
    if not actor.strip():
        raise InvalidStatus("an actor (who made the change) is required")
    with ws.session() as s:
        v = repo.get_violation(s, violation_id)
        if v is None:
            raise NotFound(f"violation {violation_id} not found")
        c = repo.candidate_of(s, v)
        host = candidate_host(c) if allow_domain else None
        if allow_domain and host is None:
            where = c.source if c else "a deleted candidate"
            raise RuleError(f"violation {violation_id}: the found image has no web host to "
                            f"allow: it came from {where!r}, not from a web address or page "
                            "(review it without allow_domain)")
        if host:
            add_allowed_domain(ws, host)
        return repo.record_status(s, v, status, actor.strip(), note)


def history(ws: Store, violation_id: int) -> list[ViolationEvent]:
    """The audit trail of one violation, oldest first (empty for an unknown id)."""
    with ws.session() as s:
        return repo.history(s, violation_id)


def web_host(url: str | None) -> str | None:
    """The host of an ``http(s)`` URL, lower case, when it is an IP address or a DNS
    name (IDNA-encoded; labels of letters, digits and inner hyphens); None for
    anything else (``upload:…``, file paths, malformed URLs)."""
    try:
        parts = urlsplit(url or "")
        host = parts.hostname
    except ValueError:  # e.g. "http://[::1" (an unclosed IPv6 bracket)
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = host.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = host.split(".")
    ok = len(host) <= 253 and all(_LABEL.fullmatch(x) for x in labels)
    return host if ok and not labels[-1].isdigit() else None


def candidate_host(c: Candidate | None) -> str | None:
    """The web host of a found image: that of its URL, else of the page it was seen on;
    None when neither is a web address (:func:`web_host`)."""
    for url in (c.source, c.page_url) if c else ():
        host = web_host(url)
        if host:
            return host
    return None


# -- rules/licensed.toml -----------------------------------------------------------

def _toml(value: object) -> str:
    """A TOML literal for the value types a rule holds (str, bool, int, float, list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(x) for x in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # JSON escapes are valid TOML escapes


def _dump(rules: list[dict]) -> str:
    lines = ["# Allow-listed (licensed) domains, maintained by `monitor violations set-status",
             "# ID licensed --allow-domain`. Edit freely; other [[rule]] tables are kept.", ""]
    for rule in rules:
        lines.append("[[rule]]")
        lines += [f"{k} = {_toml(v)}" for k, v in rule.items()]
        lines.append("")
    return "\n".join(lines)


def add_allowed_domain(ws: Workspace, host: str) -> Path:
    """Add ``host`` to the ``licensed-domains`` rule of ``rules/licensed.toml``; return the file.

    The rule is created when missing; other rules in that file are kept. When
    the rules folder holds no rule file yet (the packaged defaults are in
    force), the defaults are first copied to ``rules/default.toml`` so that
    adding this file does not replace them. The new file is validated with
    :func:`monitor.matching.rules.load_rules` before it replaces the old one.

    Raises:
        RuleError: the existing file is invalid, or the result would be.
    """
    folder = ws.settings.path(ws.settings.rules.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LICENSED_FILE
    if not any(folder.glob("*.toml")):
        write_atomic(folder / "default.toml", DEFAULT_RULES.read_bytes())
    try:
        rules = tomllib.loads(path.read_text(encoding="utf-8")).get("rule", []) \
            if path.exists() else []
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{path}: not valid TOML: {exc}") from exc
    rule = next((r for r in rules if r.get("name") == LICENSED_RULE), None)
    if rule is None:
        rule = {"name": LICENSED_RULE, "collections": ["*"], "allow_domains": []}
        rules.append(rule)
    rule["allow_domains"] = sorted({*rule.get("allow_domains", []), host.lower()})
    text = _dump(rules)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / LICENSED_FILE).write_text(text, encoding="utf-8")
        load_rules(Path(tmp))  # raises RuleError naming the key
    write_atomic(path, text.encode("utf-8"))
    ws.__dict__.pop("rules", None)  # drop the cached RuleSet
    return path
