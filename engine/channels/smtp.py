"""The smtp transport: one EmailMessage per envelope over smtplib (implicit TLS or STARTTLS), errors classified by reply code."""
from __future__ import annotations

import base64
import hashlib
import re
import smtplib
import socket
import ssl
from datetime import datetime, UTC
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, getaddresses
from typing import Any
from collections.abc import Callable, Mapping

from engine.channels.capabilities import CAPABILITIES
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope, SendResult
from engine.channels.signing import Secret, SettingsReader, redact

SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "host": (False, False, "SMTP server host name (default localhost)"),
    "port": (False, False, "SMTP port (default 465 with ssl, 587 with starttls, else 25)"),
    "ssl": (False, False, "implicit TLS from the first byte (SMTP_SSL, usually port 465); default false"),
    "starttls": (False, False, "upgrade a plain connection with STARTTLS (usually port 587); default false"),
    "username": (False, False, "login name for SMTP AUTH; needs password"),
    "password": (False, True, "password for SMTP AUTH; needs username"),
    "from": (True, False, 'sender, e.g. "招聘团队 <hr@example.com>"; its domain names the Message-ID'),
    "reply_to": (False, False, "Reply-To address, when replies should go elsewhere"),
    "timeout": (False, False, "seconds for connecting and for each SMTP command (default 10)"),
    "list_unsubscribe": (False, False, "a mailto: or https: URI for List-Unsubscribe on every message; an https "
                                       "URI in envelope.meta['unsubscribe_url'] takes precedence for its message"),
    "message_id_scope": (False, False, "this deployment's part of every Message-ID (letters, digits, '-'; at most 32): "
                                       "distinct per deployment sending from one domain; default: a hash of the "
                                       "sender, SMTP host and user name"),
    "verify": (False, False, "verify the server's TLS certificate and host name (default true)"),
    "ca_file": (False, False, "PEM file of CA certificates to trust instead of the system store"),
    "allow_insecure_auth": (False, False, "allow AUTH without ssl or starttls (password in clear text); default false"),
    "local_hostname": (False, False, "name to give in EHLO (default: this machine's FQDN)"),
}

# RFC 2369 / RFC 8058 headers are lists of <URI>s that receivers (Gmail, Yahoo) read only when the value starts
# with '<': an RFC 2047 encoded-word there (what Python writes for any header of 76+ characters) hides them.
# Message-ID is one token that Python would move to a continuation line past 76 characters, which some parsers
# read with the leading blank: it is written on its header's line too.
_URI_LIST_HEADERS = frozenset({"list-unsubscribe", "list-unsubscribe-post", "message-id"})


class _MessagePolicy(EmailPolicy):
    """SMTP's policy (CRLF), except that List-Unsubscribe(-Post) and Message-ID go out as written, folded only
    after commas."""

    def _uri_list(self, name: str, value: str) -> str:
        items = [item.strip() for item in str(value).split(",")]
        return f"{name}: " + ("," + self.linesep + " ").join(items) + self.linesep

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _URI_LIST_HEADERS:
            return self._uri_list(name, value)
        return super().fold(name, value)

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _URI_LIST_HEADERS:
            return self._uri_list(name, value).encode("ascii")  # _valid_unsubscribe admits ASCII URIs only
        return super().fold_binary(name, value)


MESSAGE_POLICY = _MessagePolicy(linesep="\r\n")

_SAFE_ID = re.compile(r"[^A-Za-z0-9_+=-]+")
_URI_BAD = re.compile(r"[\s<>,\"]")


_SCOPE = re.compile(r"^[A-Za-z0-9-]{1,32}$")


def message_id_for(attempt_key: str, domain: str, scope: str) -> str:
    """A Message-ID fixed by the deployment's scope and the attempt key: the same attempt, retried, carries the
    same id; two deployments sending from one domain (scopes differ) never collide on equal outcome ids."""
    safe = _SAFE_ID.sub("-", attempt_key).strip("-")[:120] or "attempt"
    if safe != attempt_key:  # characters were replaced or cut: keep distinct keys distinct
        safe += "." + hashlib.sha256(attempt_key.encode("utf-8")).hexdigest()[:16]
    return f"<herald.{scope}.{safe}@{domain}>"


def one_address(value: str) -> Address | None:
    """`value` as one e-mail address ("Name <user@example.com>" or a bare one), else None."""
    pairs = getaddresses([value])
    if len(pairs) != 1 or "@" not in pairs[0][1] or any(c in value for c in "\r\n"):
        return None
    display, addr = pairs[0]
    local, _, domain = addr.rpartition("@")
    try:
        return Address(display_name=display, username=local, domain=domain)
    except (ValueError, IndexError):
        return None


class SMTPTransport:
    """Sends e-mail through an SMTP server; a new connection per message, so it is safe from any thread."""

    name = "smtp"
    capabilities = CAPABILITIES["smtp"]

    def __init__(self, channel: str, settings: Mapping[str, Any]):
        self.channel = channel
        r = SettingsReader(self.name, channel, settings, SETTINGS)
        self.ssl = r.flag("ssl", False)
        self.starttls = r.flag("starttls", False)
        self.host = r.text("host", "localhost") or "localhost"
        self.port = int(r.number("port", 465 if self.ssl else 587 if self.starttls else 25, 1, integer=True))
        if self.port > 65535:
            r.fail("port", "must be at most 65535")
        self.username = r.text("username")
        self.password: Secret | None = r.secret("password")
        self.timeout = r.number("timeout", 10.0, 0.001)
        self.verify = r.flag("verify", True)
        self.ca_file = r.text("ca_file")
        self.allow_insecure_auth = r.flag("allow_insecure_auth", False)
        self.local_hostname = r.text("local_hostname")
        self.reply_to = r.text("reply_to")
        self.list_unsubscribe = r.text("list_unsubscribe")
        scope = r.text("message_id_scope")
        if scope is not None and not _SCOPE.match(scope):
            r.fail("message_id_scope", "must be 1 to 32 letters, digits or '-'")
        if self.ssl and self.starttls:
            r.problems.append("settings 'ssl' and 'starttls' exclude each other: ssl is TLS from the start "
                              "(port 465), starttls upgrades a plain connection (port 587)")
        if bool(self.username) != bool(self.password):
            r.problems.append("settings 'username' and 'password' go together")
        if self.username and not (self.ssl or self.starttls or self.allow_insecure_auth):
            r.problems.append("setting 'username' without 'ssl' or 'starttls' would send the password in clear "
                              "text; turn on TLS or set allow_insecure_auth: true")
        if self.ca_file and not (self.ssl or self.starttls):
            r.fail("ca_file", "has no effect without 'ssl' or 'starttls'")
        self.sender = self._parse_from(r)
        default_scope = "|".join([self.sender.addr_spec if self.sender else "", self.host, self.username or ""])
        self.message_id_scope = scope or hashlib.sha256(default_scope.encode("utf-8")).hexdigest()[:10]
        if self.reply_to and len(getaddresses([self.reply_to])) != 1:
            r.fail("reply_to", "must be one e-mail address")
        if self.list_unsubscribe and not _valid_unsubscribe(self.list_unsubscribe):
            r.fail("list_unsubscribe", "must be a mailto: or https: URI without spaces, commas or angle brackets")
        r.raise_if_problems()
        self._ssl_context: ssl.SSLContext | None = None

    def _parse_from(self, r: SettingsReader) -> Address | None:
        value = r.text("from")
        if not value:
            return None
        address = one_address(value)
        if address is None:
            r.fail("from", 'must be one address like "Name <user@example.com>"')
        return address

    def __repr__(self) -> str:
        auth = f", username={self.username!r}, password=***" if self.username else ""
        tls = "ssl" if self.ssl else "starttls" if self.starttls else "plain"
        return f"SMTPTransport(channel={self.channel!r}, host={self.host!r}, port={self.port}, {tls}{auth})"

    # --- message -------------------------------------------------------------------------------------

    @property
    def id_domain(self) -> str:
        assert self.sender is not None
        try:
            return self.sender.domain.encode("idna").decode("ascii")
        except UnicodeError:
            return "herald.invalid"

    def from_for(self, envelope: Envelope) -> Address:
        """The From of `envelope`: its rule file's company.sender when set, else the channel's `from`."""
        assert self.sender is not None
        if not envelope.sender:
            return self.sender
        address = one_address(envelope.sender)
        if address is None:
            raise ValueError(f"company.sender {envelope.sender!r} is not one e-mail address")
        return address

    def build_message(self, envelope: Envelope) -> EmailMessage:
        """The message as it will be sent; raises ValueError on an address or header that cannot be sent."""
        assert self.sender is not None
        to = envelope.to.strip()
        if any(c in to for c in "\r\n,;<>") or to.count("@") != 1 or " " in to:
            raise ValueError("recipient is not one plain e-mail address")
        msg = EmailMessage(policy=MESSAGE_POLICY)
        msg["Subject"] = " ".join((envelope.subject or "").split())  # templates leave newlines; headers cannot hold them
        msg["From"] = self.from_for(envelope)
        msg["To"] = to
        if self.reply_to:
            msg["Reply-To"] = self.reply_to
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id_for(envelope.attempt_key, self.id_domain, self.message_id_scope)
        msg["X-Herald-Notification"] = envelope.notification_id
        msg["X-Herald-Attempt"] = envelope.attempt_key
        uris = self._unsubscribe_uris(envelope)
        if uris:
            msg["List-Unsubscribe"] = ", ".join(f"<{u}>" for u in uris)
            if any(u.lower().startswith("https:") for u in uris):
                msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
        # non-ASCII text goes as base64: 8bit bodies need the server's 8BITMIME, which not every relay offers
        msg.set_content(envelope.body, charset="utf-8", cte=None if envelope.body.isascii() else "base64")
        if envelope.html:
            msg.add_alternative(envelope.html, subtype="html", charset="utf-8",
                                cte=None if envelope.html.isascii() else "base64")
        return msg

    def _unsubscribe_uris(self, envelope: Envelope) -> list[str]:
        """At most one https URI (RFC 8058 one-click) and one mailto URI; the message's own URL first."""
        candidates = []
        per_message = envelope.meta.get("unsubscribe_url") if envelope.meta else None
        if per_message:
            if not isinstance(per_message, str) or not _valid_unsubscribe(per_message):
                raise ValueError("meta 'unsubscribe_url' must be a mailto: or https: URI")
            candidates.append(per_message)
        if self.list_unsubscribe:
            candidates.append(self.list_unsubscribe)
        chosen: dict[str, str] = {}
        for uri in candidates:
            chosen.setdefault(uri.split(":", 1)[0].lower(), uri)
        return [chosen[k] for k in ("https", "mailto") if k in chosen]

    # --- sending -------------------------------------------------------------------------------------

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            ctx = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else ssl.create_default_context()
            if not self.verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl_context = ctx
        return self._ssl_context

    def _open(self) -> smtplib.SMTP:
        if self.ssl:
            conn: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.local_hostname,
                                                  timeout=self.timeout, context=self._context())
        else:
            conn = smtplib.SMTP(self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout)
        try:
            conn.ehlo()
            if self.starttls:
                conn.starttls(context=self._context())  # raises SMTPNotSupportedError rather than going on in clear
                conn.ehlo()
            if self.username and self.password:
                conn.login(self.username, self.password.reveal())
        except BaseException:
            conn.close()
            raise
        return conn

    def send(self, envelope: Envelope) -> SendResult:
        try:
            msg = self.build_message(envelope)
        except ValueError as e:
            return SendResult(PERMANENT, error=f"message cannot be sent: {e}", code="message")
        message_id = str(msg["Message-ID"])

        def deliver() -> SendResult:
            conn = self._open()
            try:
                refused = conn.send_message(msg, from_addr=self.from_for(envelope).addr_spec, to_addrs=[envelope.to.strip()])
            except BaseException:
                conn.close()
                raise
            try:
                conn.quit()  # the server has taken the message: a failing QUIT changes nothing
            except (smtplib.SMTPException, OSError):
                conn.close()
            if refused:  # only possible with several recipients; kept for safety
                code, text = next(iter(refused.values()))
                return self._reply_result("recipient refused", code, text)
            return SendResult(ACCEPTED, provider_id=message_id)

        return self._guard(deliver)

    def check(self) -> list[str]:
        """Connects, says EHLO, STARTTLS and logs in when configured, NOOP, QUIT. Sends no message."""
        def probe() -> SendResult:
            conn = self._open()
            try:
                code, text = conn.noop()
                if code != 250:
                    return self._reply_result("NOOP refused", code, text)
                conn.quit()
            finally:
                conn.close()
            return SendResult(ACCEPTED)

        result = self._guard(probe)
        return [] if result.ok else [f"channel {self.channel!r}: {result.error}"]

    # --- classification ------------------------------------------------------------------------------

    def _clean(self, text: str) -> str:
        """`text` without the password, raw, URL-quoted, or base64 as AUTH PLAIN / LOGIN send it (servers echo it)."""
        return redact(text, [self.password, *self._auth_forms])

    @property
    def _auth_forms(self) -> list[str]:
        if not (self.username and self.password):
            return []
        pw = self.password.reveal()
        forms = []
        for raw in (pw, f"\0{self.username}\0{pw}", f"{self.username}\0{self.username}\0{pw}"):
            b64 = base64.b64encode(raw.encode("utf-8")).decode("ascii")
            forms += [b64, b64.rstrip("=")]
        return forms

    def _reply_result(self, what: str, code: int, text: bytes | str) -> SendResult:
        detail = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        error = self._clean(f"{what}: {code} {' '.join(detail.split())}".strip())
        status = RECOVERABLE if 400 <= code < 500 else PERMANENT if 500 <= code < 600 else RECOVERABLE
        return SendResult(status, error=error, code=str(code))

    def _guard(self, action: Callable[[], SendResult]) -> SendResult:
        where = f"{self.host}:{self.port}"
        try:
            return action()
        except smtplib.SMTPRecipientsRefused as e:
            addr, (code, text) = next(iter(e.recipients.items()))
            return self._reply_result(f"recipient {addr} refused", code, text)
        except smtplib.SMTPSenderRefused as e:
            return self._reply_result(f"sender {e.sender} refused", e.smtp_code, e.smtp_error)
        except smtplib.SMTPAuthenticationError as e:
            result = self._reply_result("authentication failed", e.smtp_code, e.smtp_error)
            if result.status == PERMANENT:
                return SendResult(PERMANENT, error=result.error, code="auth")
            return result
        except smtplib.SMTPNotSupportedError as e:
            return SendResult(PERMANENT, error=self._clean(f"{where}: server does not support {e}"), code="config")
        except smtplib.SMTPServerDisconnected as e:  # smtplib turns a read timeout into this, too
            kind = "timeout" if "timed out" in str(e) else "connection"
            return SendResult(RECOVERABLE, error=self._clean(f"{where}: server disconnected: {e}"), code=kind)
        except smtplib.SMTPResponseException as e:  # SMTPDataError, SMTPConnectError, SMTPHeloError, ...
            return self._reply_result(f"{where} answered", e.smtp_code, e.smtp_error)
        except smtplib.SMTPException as e:  # e.g. "No suitable authentication method found."
            return SendResult(PERMANENT, error=self._clean(f"{where}: {e}"), code="config")
        except ssl.SSLCertVerificationError as e:
            return SendResult(PERMANENT, error=self._clean(f"{where}: TLS certificate not trusted: "
                                                           f"{e.verify_message}; set ca_file"), code="tls")
        except ssl.SSLError as e:
            return SendResult(RECOVERABLE, error=self._clean(f"{where}: TLS failed: {e.reason or e}"), code="tls")
        except UnicodeEncodeError:
            return SendResult(PERMANENT, error="address needs SMTPUTF8, which the server does not offer",
                              code="message")
        except socket.gaierror as e:
            return SendResult(RECOVERABLE, error=f"{where}: host not found ({e.strerror})", code="dns")
        except TimeoutError:
            return SendResult(RECOVERABLE, error=f"{where}: timed out after {self.timeout:g} s", code="timeout")
        except ConnectionRefusedError:
            return SendResult(RECOVERABLE, error=f"{where}: connection refused", code="connection")
        except OSError as e:
            return SendResult(RECOVERABLE, error=self._clean(f"{where}: {e.strerror or type(e).__name__}"),
                              code="connection")


def _valid_unsubscribe(uri: str) -> bool:
    low = uri.lower()
    if _URI_BAD.search(uri) or not uri.isascii():
        return False
    if low.startswith("mailto:"):
        return "@" in uri
    return low.startswith("https://") and len(uri) > len("https://")
