"""herald.yaml: defaults for a fresh checkout, ${ENV} secret expansion, and the resolved Config.

The sections the daemon reads (server, dispatch, tracking, alerts) are parsed once, here, into frozen
dataclasses; nothing else reads herald.yaml's raw mappings.
"""
from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Mapping

from engine.channels.capabilities import ADDRESSED
from engine.config.console import SECRET_ENV, ConsoleSettings, parse_console
from engine.rules.schemacheck import schema_diagnostics
from engine.rules.yamlpos import Document, load_yaml_file
from engine.errors import Diagnostic, Loc

CONFIG_NAMES = ("herald.yaml", "herald.yml")
DEFAULT_CHANNELS = ("dingtalk", "sms", "email", "webhook")
SECRET_KEYS = frozenset({"password", "app_secret", "access_key_secret", "secret", "access_token",
                         "token", "hmac_secret", "api_key", "push_token"})
ADDRESSED_TRANSPORTS = ADDRESSED  # send to one person's address (engine.channels.capabilities)
MIN_AUTH_SECRET = 16  # characters; a shorter server.auth token or hmac_secret is an error
MIN_PUSH_TOKEN = 16  # characters; a shorter aliyun-sms push_token leaves the push endpoints off
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ChannelConfig:
    """One configured channel: its name, transport and settings (secrets expanded, never printed)."""

    name: str
    transport: str
    settings: Mapping[str, Any] = field(repr=False)
    loc: Loc | None = field(default=None, compare=False)

    def redacted(self) -> dict:
        return {k: ("***" if k in SECRET_KEYS and v else v) for k, v in self.settings.items()}


def _text(value: Any) -> str | None:
    """A non-empty string setting, else None (empty counts as unset)."""
    return value if isinstance(value, str) and value else None


def _seconds(value: Any, default: float) -> float:
    """A duration setting ("30s", "1h30m") in seconds; the default when absent or unreadable."""
    from engine.schedule.timing import parse_duration

    d = parse_duration(value) if isinstance(value, str) else None
    return d.total_seconds() if d is not None else default


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class ServerAuth:
    """server.auth: how intake requests prove they come from the ATS (secrets expanded, never printed)."""

    token: str | None = field(default=None, repr=False)
    hmac_secret: str | None = field(default=None, repr=False)
    signature_header: str = "X-Herald-Signature"

    @classmethod
    def parse(cls, raw: Any) -> ServerAuth:
        raw = _mapping(raw)
        return cls(token=_text(raw.get("token")), hmac_secret=_text(raw.get("hmac_secret")),
                   signature_header=_text(raw.get("signature_header")) or cls.signature_header)


@dataclass(frozen=True)
class ServerSettings:
    """server: where the daemon listens, the URL candidates reach it at, and intake authentication."""

    host: str = "127.0.0.1"
    port: int = 8025
    public_url: str | None = None
    auth: ServerAuth = ServerAuth()
    reload_timeout: float = 60.0     # seconds a reload may take before it is given up
    max_concurrent_bodies: int = 4  # requests with a body in progress at once; beyond: 503 + Retry-After

    @classmethod
    def parse(cls, raw: Any) -> ServerSettings:
        raw = _mapping(raw)
        port = raw.get("port")
        bodies = raw.get("max_concurrent_bodies")
        return cls(host=_text(raw.get("host")) or cls.host,
                   port=port if isinstance(port, int) and not isinstance(port, bool) and 0 < port < 65536 else cls.port,
                   public_url=_text(raw.get("public_url")), auth=ServerAuth.parse(raw.get("auth")),
                   reload_timeout=_seconds(raw.get("reload_timeout"), cls.reload_timeout),
                   max_concurrent_bodies=bodies if isinstance(bodies, int) and not isinstance(bodies, bool)
                   and bodies > 0 else cls.max_concurrent_bodies)


@dataclass(frozen=True)
class DispatchSettings:
    """dispatch: times are clock seconds except poll_interval and lease (real seconds)."""

    workers: int = 2
    max_attempts: int = 5
    backoff_base: float = 30.0
    backoff_max: float = 3600.0
    poll_interval: float = 1.0
    batch: int = 10
    lease: float = 120.0
    receipt_interval: float = 60.0  # clock seconds between two rounds of receipt polling

    @classmethod
    def parse(cls, raw: Any) -> DispatchSettings:
        raw = _mapping(raw)

        def count(key: str, default: int) -> int:
            value = raw.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else default

        return cls(workers=count("workers", cls.workers), max_attempts=count("max_attempts", cls.max_attempts),
                   backoff_base=_seconds(raw.get("backoff_base"), cls.backoff_base),
                   backoff_max=_seconds(raw.get("backoff_max"), cls.backoff_max),
                   poll_interval=max(_seconds(raw.get("poll_interval"), cls.poll_interval), 0.05),
                   lease=max(_seconds(raw.get("lease"), cls.lease), 1.0),
                   receipt_interval=max(_seconds(raw.get("receipt_interval"), cls.receipt_interval), 0.001))

    def backoff(self, tries: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(max, base * 2**(tries-1))], at least 1 s."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** min(max(tries - 1, 0), 60)))
        return max(1.0, rng.uniform(0, cap) if rng is not None else random.uniform(0, cap))


@dataclass(frozen=True)
class TrackingSettings:
    """tracking: the key that signs links (secret expanded, never printed) and the report's time zone."""

    secret: str | None = field(default=None, repr=False)
    timezone: str = "Asia/Shanghai"

    @classmethod
    def parse(cls, raw: Any) -> TrackingSettings:
        raw = _mapping(raw)
        return cls(secret=_text(raw.get("secret")), timezone=_text(raw.get("timezone")) or cls.timezone)


DEFAULT_ALERT_INTERVAL = 60.0


@dataclass(frozen=True)
class AlertSettings:
    """alerts: where HR alerts go (None: nowhere), who is mentioned, the minimum gap (real seconds)."""

    channel: str | None = None
    at_mobiles: tuple[str, ...] = ()
    interval: float = DEFAULT_ALERT_INTERVAL
    to: tuple[str, ...] = ()  # recipients, for a channel that messages people (smtp, sms...): one message each

    @classmethod
    def parse(cls, raw: Any) -> AlertSettings:
        raw = _mapping(raw)
        channel = raw.get("channel")
        mobiles = raw.get("at_mobiles") or ()
        to = raw.get("to") or ()
        to = [to] if isinstance(to, str) else to
        return cls(channel=str(channel) if channel else None,
                   at_mobiles=tuple(str(m) for m in mobiles) if isinstance(mobiles, (list, tuple)) else (),
                   interval=max(_seconds(raw.get("interval"), DEFAULT_ALERT_INTERVAL), 0.0),
                   to=tuple(str(t).strip() for t in to if str(t).strip()) if isinstance(to, (list, tuple)) else ())


@dataclass(frozen=True)
class Config:
    """Where the rules, templates, store and outbox are, and the channels, windows and server settings."""

    root: Path
    file: str | None
    rules: tuple
    templates: Path
    store_path: Path
    outbox: Path
    channels: Mapping[str, ChannelConfig]
    company: Mapping[str, Any] = field(default_factory=dict)
    windows: Mapping[str, Any] = field(default_factory=dict)  # name -> (spec dict, Loc)
    server: ServerSettings = ServerSettings()
    dispatch: DispatchSettings = DispatchSettings()
    tracking: TrackingSettings = TrackingSettings()
    alerts: AlertSettings = AlertSettings()
    sources: Mapping[str, Any] = field(default_factory=dict, repr=False)  # name -> engine.sources.config.SourceConfig
    render: Mapping[str, Any] = field(default_factory=dict)  # the render budget: time_ms, output_kb
    store_url: str | None = field(default=None, repr=False)  # store.url or HERALD_STORE: PostgreSQL (may hold a password)
    event_retention: str | None = None  # store.retention.events ("400d"): what `herald db prune` deletes
    console: ConsoleSettings = field(default_factory=ConsoleSettings)  # the web console's accounts and session key (engine.config.console)
    store_listen: bool = True  # store.listen: PostgreSQL wake-up hints (LISTEN/NOTIFY); false polls only (PgBouncer)

    @property
    def store_target(self) -> str:
        """What engine.store.open_store opens: the PostgreSQL URL when one is set, else the SQLite file."""
        return self.store_url or str(self.store_path)

    @property
    def store_label(self) -> str:
        """The store as messages and logs name it (a URL without its password)."""
        from engine.store.postgres import redact

        return str(self.store_path) if self.store_url is None else redact(self.store_url)


def expand_env(value: Any, env: Mapping[str, str], missing: list) -> Any:
    """Replace ${NAME} in strings (recursively) from `env`; names not set are appended to `missing`."""
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            name = m.group(1)
            if name not in env:
                missing.append(name)
                return ""
            return env[name]
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, missing) for v in value]
    return value


def literal_secret(value: Any) -> bool:
    """A non-empty secret written into the file instead of taken from the environment (${VAR})."""
    return isinstance(value, str) and bool(value) and not _ENV.search(value)


def find_config(start: Path) -> Path | None:
    for name in CONFIG_NAMES:
        if (start / name).is_file():
            return start / name
    return None


def _default_channels(outbox: Path) -> dict:
    return {name: ChannelConfig(name, "outbox", {"directory": str(outbox)}) for name in DEFAULT_CHANNELS}


def load_config(path: str | Path | None = None, root: str | Path | None = None,
                env: Mapping[str, str] | None = None) -> tuple[Config, list[Diagnostic]]:
    """Load herald.yaml (or the defaults when there is none); problems come back as diagnostics."""
    env = os.environ if env is None else env
    root = Path(root) if root is not None else Path.cwd()
    cfg_path = Path(path) if path is not None else find_config(root)
    data: dict = {}
    doc: Document | None = None
    diags: list[Diagnostic] = []
    if cfg_path is not None:
        root = cfg_path.parent if path is not None and root == Path.cwd() else root
        doc, diags = load_yaml_file(cfg_path, display=_display(cfg_path))
        if doc.data is not None and not isinstance(doc.data, dict):
            diags.append(doc.loc().error("bad-type", "herald.yaml must be a mapping of settings"))
        elif doc.data:
            diags += schema_diagnostics("config", doc)
            data = doc.data
    if cfg_path is not None and path is not None:
        root = cfg_path.parent

    def p(value: Any, default: str) -> Path:
        raw = value if isinstance(value, str) and value else default
        return (root / raw) if not Path(raw).is_absolute() else Path(raw)

    rules_raw = data.get("rules", "rules")
    rules = tuple(p(r, "rules") for r in (rules_raw if isinstance(rules_raw, list) else [rules_raw]))
    raw_store = data.get("store")
    store: Mapping[str, Any] = raw_store if isinstance(raw_store, dict) else {}
    outbox = p(data.get("outbox"), "outbox")
    channels = _default_channels(outbox)
    raw_channels = data.get("channels")
    if doc is not None and isinstance(raw_channels, dict) and raw_channels:  # (data comes from a document)
        channels = {}
        for name, spec in raw_channels.items():
            if not isinstance(spec, dict):
                continue
            loc = doc.loc(("channels", name), key=True)
            settings = {}
            for key, value in spec.items():
                if key == "transport":
                    continue
                missing: list = []
                settings[key] = expand_env(value, env, missing)
                for var in missing:
                    diags.append(doc.loc(("channels", name, key)).warning(
                        "unset-env", f"channel {name}: {key}: environment variable {var} is not set"))
            for key, value in spec.items():
                if key in SECRET_KEYS and literal_secret(value):
                    diags.append(doc.loc(("channels", name, key)).warning(
                        "literal-secret", f'channel {name}: "{key}" is written in the file; '
                                          'write "${ENV_VAR}" and set it in the environment'))
            transport = spec.get("transport", "outbox")
            token = settings.get("push_token")
            if transport == "aliyun-sms" and isinstance(token, str) and 0 < len(token) < MIN_PUSH_TOKEN and doc:
                diags.append(doc.loc(("channels", name, "push_token")).warning(
                    "weak-secret", f"channel {name}: push_token is shorter than {MIN_PUSH_TOKEN} characters: "
                                   "the Aliyun push endpoints stay off"))
            if transport == "outbox":
                settings.setdefault("directory", str(outbox))
            channels[name] = ChannelConfig(name, str(transport), settings, loc)
    windows = {}
    if isinstance(data.get("windows"), dict) and doc:
        windows = {k: (v, doc.loc(("windows", k), key=True)) for k, v in data["windows"].items()}
    unset: list = []
    server = expand_env(data.get("server") or {}, env, unset)
    tracking = expand_env(data.get("tracking") or {}, env, unset)
    alerts = expand_env(data.get("alerts"), env, unset) if isinstance(data.get("alerts"), dict) else {}
    alert_settings = AlertSettings.parse(alerts)
    store_file, store_url = _store_target(store, env, unset)
    diags += _check_alerts(alert_settings, channels, doc)
    from engine.sources.config import load_sources

    sources, more = load_sources(data.get("sources"), doc, env)
    diags += more
    diags += _check_auth(server, doc, _display(cfg_path) if cfg_path else "herald.yaml")
    raw_console = data.get("console")
    raw_console = raw_console if isinstance(raw_console, dict) else {}
    console, more = parse_console(expand_env(raw_console, env, unset), doc,
                                  _display(cfg_path) if cfg_path else "herald.yaml", env.get(SECRET_ENV),
                                  literal=literal_secret(raw_console.get("secret")))
    diags += more
    for var in unset:
        diags.append(Loc(_display(cfg_path) if cfg_path else "herald.yaml", 1, 1).warning(
            "unset-env", f"environment variable {var} is not set"))
    cfg = Config(
        root=root,
        file=_display(cfg_path) if cfg_path else None,
        rules=rules,
        templates=p(data.get("templates"), "templates"),
        store_path=p(store_file, "herald.db"),
        store_url=store_url,
        event_retention=_retention(store),
        store_listen=store.get("listen") is not False,
        outbox=outbox,
        channels=channels,
        company=data.get("company") or {},
        windows=windows,
        server=ServerSettings.parse(server),
        dispatch=DispatchSettings.parse(data.get("dispatch")),
        tracking=TrackingSettings.parse(tracking),
        alerts=alert_settings,
        sources=sources,
        render=render if isinstance(render := data.get("render"), dict) else {},
        console=console,
    )
    return cfg, diags


def _check_auth(server: Any, doc: Document | None, file: str) -> list[Diagnostic]:
    """server.auth's token and HMAC secret, when set, must be at least MIN_AUTH_SECRET characters (never shown)."""
    auth = server.get("auth") if isinstance(server, dict) else None
    out = []
    for key in ("token", "hmac_secret"):
        value = auth.get(key) if isinstance(auth, dict) else None
        if isinstance(value, str) and 0 < len(value) < MIN_AUTH_SECRET:
            loc = doc.loc(("server", "auth", key)) if doc else Loc(file, 1, 1)
            out.append(loc.error("weak-secret", f"server.auth.{key} is {len(value)} characters long: use a random "
                                                f"value of at least {MIN_AUTH_SECRET} characters"))
    return out


def _store_target(store: Mapping[str, Any], env: Mapping[str, str], missing: list) -> tuple[Any, str | None]:
    """(SQLite path, PostgreSQL URL) from store: {path} / store: {url}; HERALD_STORE (`herald --store`) overrides
    both: a postgresql:// URL or a file path."""
    override = env.get("HERALD_STORE")
    if override:
        from engine.store.postgres import is_url

        return (None, override) if is_url(override) else (override, None)
    url = expand_env(store.get("url"), env, missing)
    return store.get("path"), (url if isinstance(url, str) and url else None)


def _retention(store: Mapping[str, Any]) -> str | None:
    """store.retention.events as written (the schema checks its form; `herald db prune` parses it)."""
    retention = store.get("retention")
    value = retention.get("events") if isinstance(retention, dict) else None
    return value if isinstance(value, str) and value else None


def _check_alerts(alerts: AlertSettings, channels: Mapping[str, ChannelConfig],
                  doc: Document | None) -> list[Diagnostic]:
    """alerts.channel must name a configured channel: one that needs no recipient (a group robot, a webhook), or
    one that does (smtp, sms...) with recipients in alerts.to."""
    from engine.rules.suggest import did_you_mean

    name = alerts.channel
    if name is None:
        return []
    loc = doc.loc(("alerts", "channel")) if doc else Loc("herald.yaml", 1, 1)
    if name in channels:
        transport = channels[name].transport
        if transport in ADDRESSED_TRANSPORTS and not alerts.to:
            return [loc.warning("alert-channel", f'alerts.channel "{name}" uses {transport}, which needs a '
                                                 "recipient: list them in alerts.to (e.g. to: [hr@example.com]), or "
                                                 "use a dingtalk-robot, webhook or outbox channel")]
        return []
    return [loc.error("unknown-channel", f'alerts.channel: unknown channel "{name}"{did_you_mean(name, channels)} '
                                         f"(configured: {', '.join(channels)})")]


def _display(path: Path) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


display_path = _display
