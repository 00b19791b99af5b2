"""The operator's desk on the command line: `herald held`, `approve`, `withdraw`, `queue`, `cancel`, `reschedule`,
`send-now`, `pause`, `resume`, `history`, `dead-letters`, each talking to the running daemon's /v1 API (the URL
and token from --url/--token, HERALD_URL/HERALD_TOKEN, else herald.yaml's server section) and printing a table
or JSON (`--format`). Listings follow the cursors page by page; the actor (--actor, HERALD_ACTOR, else $USER)
is what the audit log records."""
from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click

if TYPE_CHECKING:  # the client (httpx, the daemon package) is imported when a desk command runs, not at startup
    from engine.daemon.client import DeskClient

FORMATS = ("table", "json")


def quote_id(value: str) -> str:
    """An outcome or notification id as one path part (`#` and `/` escaped)."""
    return quote(value, safe="")


def _client(url: str | None, token: str | None, actor: str | None, config_path: str | None) -> DeskClient:
    from engine.daemon.client import DeskClient

    if url is None or token is None:
        from engine.config.settings import load_config

        server = load_config(config_path)[0].server
        url = url or f"http://{server.host}:{server.port}"
        token = token or server.auth.token
    return DeskClient(url, token, operator(actor))


def operator(actor: str | None) -> str | None:
    """Who acts, for the audit log: --actor / HERALD_ACTOR when given, else the user name (None when there is
    none: the daemon then says how the caller came in)."""
    if actor:
        return actor
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name
        return None


def desk_options(f: Callable) -> Callable:
    """--url, --token, --actor, --format and --config for every desk command."""
    for opt in reversed((
        click.option("--url", envvar="HERALD_URL", default=None,
                     help="The daemon [env HERALD_URL; default: http://<server.host>:<server.port> of herald.yaml]."),
        click.option("--token", envvar="HERALD_TOKEN", default=None,
                     help="Bearer token [env HERALD_TOKEN; default: server.auth.token of herald.yaml]."),
        click.option("--actor", envvar="HERALD_ACTOR", default=None,
                     help="Who you are, for the audit log [env HERALD_ACTOR; default: your user name]."),
        click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True),
        click.option("--config", "config_path", type=click.Path(dir_okay=False),
                     help="herald.yaml to read the daemon's address and token from."),
    )):
        f = opt(f)
    return f


def _run(name: str, call: Callable[[DeskClient], Any], opts: dict) -> Any:
    from engine.daemon.client import DeskError

    client = _client(opts["url"], opts["token"], opts["actor"], opts["config_path"])
    try:
        return call(client)
    except DeskError as e:
        where = f" ({e.field})" if e.field else ""
        click.echo(f"herald {name}: {e}{where}", err=True)
        sys.exit(1)
    except OSError as e:  # connection refused, DNS...: one line, no traceback
        click.echo(f"herald {name}: cannot reach the daemon at {client.url}: {e}", err=True)
        sys.exit(1)
    except Exception as e:  # httpx's transport errors are not OSErrors
        if type(e).__module__.startswith("httpx"):
            click.echo(f"herald {name}: cannot reach the daemon at {client.url}: {e}", err=True)
            sys.exit(1)
        raise
    finally:
        client.close()


def _short(t: str | None) -> str:
    return (t or "-")[:19].replace("T", " ")


def table(rows: Sequence[Sequence[Any]], head: Sequence[str]) -> str:
    """Columns padded to their widest cell; control characters shown, never sent to the terminal."""
    from engine.safetext import escape_controls

    cells = [[escape_controls(str("-" if c is None else c)) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(head, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _emit(fmt: str, data: Any, render: Callable[[Any], str]) -> None:
    if fmt == "json":
        click.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        click.echo(render(data))


def _outcome_rows(items: Iterable[dict]) -> str:
    rows = [(o["id"], o["status"], _short(o["received_at"]), (o.get("candidate") or {}).get("name"),
             o.get("decision"), o.get("stage"), o.get("role")) for o in items]
    return table(rows, ("id", "status", "received", "candidate", "decision", "stage", "role")) if rows else "none"


def _action_line(doc: dict) -> str:
    parts = [f"{doc['id']}: {doc.get('state')}"]
    if doc.get("status"):
        parts.append(doc["status"])
    if doc.get("notification"):
        parts.append(f"notification {doc['notification']} at {doc.get('send_at')}")
    if doc.get("next_attempt_at"):
        parts.append(f"next attempt {doc['next_attempt_at']} on {doc.get('channel')}")
    if doc.get("window_closed_until"):
        parts.append(f"send window closed until {doc['window_closed_until']}: "
                     + ("overridden, sending now" if doc.get("override_window")
                        else "it goes then (--override-window sends it now)"))
    if doc.get("cancelled") is not None:
        parts.append(f"{doc['cancelled']} queued notification(s) cancelled")
    if doc.get("error"):
        parts.append(doc["error"])
    return ", ".join(parts)


def register(main: click.Group) -> None:
    """Adds the desk's commands to the `herald` group."""

    @main.command("held")
    @click.option("--limit", type=click.IntRange(1), default=None, help="At most this many (default: all).")
    @desk_options
    def held(limit: int | None, **opts: Any) -> None:
        """Outcomes waiting for approval (approved: false), oldest first; `herald approve ID` releases one."""
        items = _run("held", lambda c: list(c.pages("/v1/held", {"limit": 200}, limit)), opts)
        _emit(opts["fmt"], items, _outcome_rows)

    @main.command("approve")
    @click.argument("outcome_id")
    @click.option("--reason", default=None, help="Why (kept in the audit log).")
    @desk_options
    def approve(outcome_id: str, reason: str | None, **opts: Any) -> None:
        """Release a held outcome: its message is planned now and goes out on its rule's schedule."""
        doc = _run("approve", lambda c: c.post(f"/v1/outcomes/{quote_id(outcome_id)}/approve",
                                               {"reason": reason}), opts)
        _emit(opts["fmt"], doc, _action_line)

    @main.command("withdraw")
    @click.argument("outcome_id")
    @click.option("--reason", required=True, help="Why (kept in the audit log).")
    @desk_options
    def withdraw(outcome_id: str, reason: str, **opts: Any) -> None:
        """The decision changed: cancel what is queued for OUTCOME_ID (refused when a message already went out)."""
        doc = _run("withdraw", lambda c: c.post(f"/v1/outcomes/{quote_id(outcome_id)}/withdraw",
                                                {"reason": reason}), opts)
        _emit(opts["fmt"], doc, _action_line)

    @main.command("queue")
    @click.option("--today", is_flag=True, help="What goes out today (in --timezone, default tracking.timezone).")
    @click.option("--since", metavar="TIME", help="Due at or after TIME (RFC 3339, e.g. 2026-11-24T09:00:00+08:00).")
    @click.option("--until", metavar="TIME", help="Due before TIME (RFC 3339).")
    @click.option("--timezone", "tz", default=None, metavar="ZONE", help="The zone of --today (IANA name).")
    @click.option("--state", "states", multiple=True, metavar="STATE",
                  help="Only this state (repeatable; default: scheduled and sending).")
    @click.option("--channel", default=None, help="Only this channel.")
    @click.option("--limit", type=click.IntRange(1), default=None, help="At most this many (default: all).")
    @desk_options
    def queue(today: bool, since: str | None, until: str | None, tz: str | None, states: tuple,
              channel: str | None, limit: int | None, **opts: Any) -> None:
        """Notifications in the order they go out; paused channels are named (`herald resume` lifts a pause)."""
        if today and (since or until):
            raise click.UsageError("--today or --since/--until, not both")
        params = {"today": "true" if today else None, "since": since, "until": until, "timezone": tz,
                  "channel": channel, "state": list(states or ("scheduled", "sending")), "limit": 200}

        def call(c: DeskClient) -> dict:
            paused = c.get("/v1/pauses")["paused"]
            return {"items": list(c.pages("/v1/queue", params, limit)), "paused": [p["channel"] for p in paused]}

        doc = _run("queue", call, opts)

        def render(d: dict) -> str:
            rows = [(n["id"], n["state"], _short(n["due_at"]), n["channel"], n.get("rule"),
                     "late" if n.get("late") else "") for n in d["items"]]
            out = table(rows, ("notification", "state", "due (UTC)", "channel", "rule", "")) if rows else "none"
            if d["paused"]:
                out += "\npaused: " + ", ".join("every channel" if p == "*" else p for p in d["paused"])
            return out

        _emit(opts["fmt"], doc, render)

    def queue_command(name: str, path: str, doc_text: str, with_at: bool = False, with_override: bool = False) -> None:
        @main.command(name, help=doc_text)
        @click.argument("notification_id")
        @click.option("--reason", default=None, help="Why (kept in the audit log).")
        @desk_options
        def command(notification_id: str, reason: str | None, at: str | None = None, override_window: bool = False,
                    **opts: Any) -> None:
            doc = _run(name, lambda c: c.post(f"/v1/notifications/{quote_id(notification_id)}/{path}",
                                              {"reason": reason, "at": at,
                                               "override_window": "true" if override_window else None}), opts)
            _emit(opts["fmt"], doc, _action_line)

        if with_at:
            click.option("--at", required=True, metavar="TIME",
                         help="When (RFC 3339 with its offset, e.g. 2026-11-24T15:00:00+08:00).")(command)
        if with_override:
            click.option("--override-window", is_flag=True,
                         help="Send even when the rule's send window is closed now (recorded).")(command)

    queue_command("cancel", "cancel", "Cancel a scheduled notification (ID: <outcome id>#<revision>): never sent.")
    queue_command("reschedule", "reschedule", "Move a scheduled notification to --at (its send window still "
                  "applies).", with_at=True)
    queue_command("send-now", "send-now", "Make a scheduled notification due now (unless its channel is paused); "
                  "in a closed send window it goes at the window's opening, unless --override-window.",
                  with_override=True)

    def pause_command(name: str) -> None:
        @main.command(name, help=("Pause sending (every channel, or --channel); intake goes on, due messages wait."
                                  if name == "pause" else "Resume sending (every channel, or --channel)."))
        @click.option("--channel", default=None, help="Only this channel.")
        @click.option("--reason", default=None, help="Why (kept in the audit log).")
        @desk_options
        def command(channel: str | None, reason: str | None, **opts: Any) -> None:
            doc = _run(name, lambda c: c.post(f"/v1/{name}", {"channel": channel, "reason": reason}), opts)
            _emit(opts["fmt"], doc, lambda d: "paused: " + (", ".join(
                "every channel" if p["channel"] == "*" else p["channel"] for p in d["paused"]) or "nothing"))

    pause_command("pause")
    pause_command("resume")

    @main.command("history")
    @click.argument("query")
    @click.option("--limit", type=click.IntRange(1), default=20, show_default=True,
                  help="At most this many outcomes.")
    @desk_options
    def history(query: str, limit: int, **opts: Any) -> None:
        """A candidate's whole history, found by outcome id, name, e-mail or phone: outcomes and revisions,
        notifications with attempts and events, replies, ratings and what people did."""
        def call(c: DeskClient) -> list[dict]:
            found = list(c.pages("/v1/candidates", {"q": query, "limit": min(limit, 200)}, limit))
            return [c.get(f"/v1/history/{quote_id(f['outcome_id'])}") for f in found]

        docs = _run("history", call, opts)
        if not docs and opts["fmt"] == "table":
            click.echo(f"herald history: nobody matches {query!r}", err=True)
            sys.exit(1)
        _emit(opts["fmt"], docs, lambda ds: "\n\n".join(_history_text(d) for d in ds))

    @main.command("dead-letters")
    @click.option("--resubmit", "resubmit_id", type=click.IntRange(1), default=None, metavar="ID",
                  help="Resubmit dead letter ID with the corrected body of --file.")
    @click.option("--file", "fixed", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="The corrected outcome (one JSON object).")
    @click.option("--reason", default=None, help="Why (kept in the audit log).")
    @click.option("--limit", type=click.IntRange(1), default=None, help="At most this many (default: all).")
    @desk_options
    def dead_letters(resubmit_id: int | None, fixed: str | None, reason: str | None, limit: int | None,
                     **opts: Any) -> None:
        """Refused inputs, newest first, with the error and field; --resubmit ID --file FIXED.json sends a
        corrected body through the same gate as intake."""
        if (resubmit_id is None) != (fixed is None):
            raise click.UsageError("--resubmit ID and --file FIXED.json go together")
        if resubmit_id is not None and fixed is not None:  # both or neither (checked above)
            body = Path(fixed).read_bytes()
            doc = _run("dead-letters", lambda c: c.post(f"/v1/dead-letters/{resubmit_id}/resubmit",
                                                        {"reason": reason}, body), opts)
            _emit(opts["fmt"], doc, lambda d: f"dead letter {resubmit_id}: taken as {d.get('id')}: {d['status']}"
                  + (f", notification {d['notification']} at {d.get('send_at')}" if d.get("notification") else ""))
            return
        items = _run("dead-letters", lambda c: list(c.pages("/v1/dead-letters", {"limit": 200}, limit)), opts)
        _emit(opts["fmt"], items, lambda ds: table(
            [(d["id"], _short(d["received_at"]), d["source"], d.get("field"), d["reason"][:60],
              d["body"][:40].replace("\n", " ")) for d in ds],
            ("id", "received", "source", "field", "error", "body")) if ds else "none")


def _revision(change: dict) -> str:
    """What a received or amended change of the outcome's history carries: the revision's routing fields
    (`: revision 2: offer · final · backend`) and, for an amendment, how many queued notifications it cancelled."""
    body, detail = change.get("body"), change.get("detail") or {}
    if change.get("kind") not in ("received", "amended") or not isinstance(body, dict):
        return ""
    fields = " · ".join(str(body[k]) for k in ("decision", "stage", "role", "reason") if body.get(k) is not None)
    rev = detail.get("rev", 1) if change["kind"] == "amended" else 1
    cancelled = detail.get("cancelled")
    return (f": revision {rev}: {fields}"
            + (f"; {cancelled} queued notification(s) cancelled" if cancelled else ""))


def _history_text(d: dict) -> str:
    o = d["outcome"]
    body = o.get("body") or {}
    who = body.get("candidate") or {} if isinstance(body, dict) else {}
    lines = [f"{o['id']}  {who.get('name') or ''}  {o['status']} / {o['state']}  (revision {o['rev']})"]
    timeline: list[tuple[str, str]] = [(c["at"] or "", f"outcome {c['kind']}" + _revision(c)) for c in o["history"]]
    for n in d["notifications"]:
        timeline += [(e["at"] or "", f"{n['id']} {e['kind']} {e.get('channel') or ''}".rstrip())
                     for e in n["events"]]
        timeline += [(a["started_at"] or "", f"{n['id']} attempt on {a['channel']}: {a['status']}"
                      + (f" ({a['error']})" if a.get("error") else "")) for a in n["attempts"]]
    timeline += [(r["at"] or "", f"reply #{r['id']}: {r['content'][:80]}") for r in d["replies"]]
    timeline += [(a["at"] or "", f"{a['action']} by {a['actor']}" + (f": {a['reason']}" if a.get("reason") else ""))
                 for a in d["actions"]]
    from engine.safetext import escape_controls

    lines += [f"  {_short(t)}  {escape_controls(text)}" for t, text in sorted(timeline, key=lambda x: x[0])]
    return "\n".join(lines)
