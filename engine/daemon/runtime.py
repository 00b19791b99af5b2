"""One running daemon's state: the deployment in use (swapped whole on reload), store, clock, transports, metrics."""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterable, Sequence

from engine.daemon.alerts import Alerter
from engine.channels import build_transport
from engine.schedule.clock import Clock
from engine.config.deployment import Deployment
from engine.intake.batch import ItemStatus, intake
from engine.intake.group import GroupCommit
from engine.store import SourceDelivery, Store
from engine.desk import actions
from engine.daemon.auth import Auth
from engine.daemon.metrics import Metrics
from engine.desk.planning import ClockedPipeline

if TYPE_CHECKING:  # the dispatcher and the reloader import this module
    from engine.daemon.dispatch import Dispatcher
    from engine.daemon.reload import Reloader

log = logging.getLogger("herald")


TRANSPORT_GRACE_S = 120.0  # after a reload, how long the replaced transports stay open for sends in flight


class Transports:
    """The transport of each configured channel, built on first use; a channel that cannot be built gives its error."""

    def __init__(self, channels: dict, limiter_for: Callable[[int, float], Any] | None = None):
        self.channels = channels
        self.limiter_for = limiter_for  # provider rate limits shared across replicas (the store's), if any
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[Any | None, str | None]:
        """(transport, None) or (None, why the channel cannot send)."""
        with self._lock:
            if name not in self._built:
                ch = self.channels.get(name)
                if ch is None:
                    self._built[name] = f"channel {name!r} is not configured"
                else:
                    try:
                        self._built[name] = build_transport(ch, self.limiter_for)
                    except Exception as e:  # noqa: BLE001 - a bad channel must not stop the others
                        self._built[name] = f"channel {name!r} cannot be built: {e}"
            got = self._built[name]
        return (None, got) if isinstance(got, str) else (got, None)

    def put(self, name: str, transport: Any) -> None:
        """Uses `transport` for channel `name` (tests and embedding: a transport that is not in the registry)."""
        with self._lock:
            self._built[name] = transport

    def close(self) -> None:
        for t in list(self._built.values()):
            close = getattr(t, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:
                    log.debug("closing transport %r failed", t, exc_info=True)


@dataclass(frozen=True)
class State:
    """Everything that comes from the deployment's files, replaced as one reference on reload."""

    deployment: Deployment
    pipeline: ClockedPipeline
    transports: Transports
    auth: Auth


def ruleset_files(dep: Deployment) -> dict[str, str]:
    """Rule files and templates of a deployment with a short content hash each, for the rule-set record."""
    return dict(dep.ruleset.sources) if dep.ruleset else {}


class Runtime:
    """The daemon's state and its actions; HTTP handlers, the dispatcher and the reloader all go through it."""

    def __init__(self, deployment: Deployment, store: Store, clock: Clock, *, paths: Sequence[str] = (),
                 config_path: str | None = None):
        self.paths = tuple(paths)
        self.config_path = config_path
        self.store = store
        self.clock = clock
        self.metrics = Metrics(lambda: self.store)
        self.reload_lock = threading.Lock()
        self.last_reload_error: list[str] = []
        self.stuck_reloads: list = []  # reload threads given up on that still run (engine.daemon.reload)
        self.reloader: Reloader | None = None  # the file watcher, when watching
        self.dispatcher: Dispatcher | None = None  # set by engine.daemon.serve.Daemon; none in tests that send by hand
        self.listen_host = "127.0.0.1"  # where the daemon listens (set by engine.daemon.serve.Daemon)
        self._wakers: list[Callable[[], None]] = []
        self._groups: dict[tuple[str, str | None], GroupCommit] = {}  # (origin, remote) -> its single-item intakes
        self._groups_lock = threading.Lock()
        self.public_url: str | None = None    # where links in messages point (server.public_url or our address)
        self.tracking_key: str | None = None  # signs those links (tracking.secret); None: no links
        self.state = self.make_state(deployment)
        self.alerts = Alerter(lambda: self.state.deployment.config.alerts,
                              lambda name: self.state.transports.get(name),
                              queue=store.alert_queue(), leader=self.leads)
        self.metrics.set_ruleset(deployment.ruleset_in_use.version, len(deployment.ruleset_in_use.rules))

    def make_state(self, dep: Deployment) -> State:
        """A complete new State for `dep` (built before anything is swapped)."""
        pipeline = ClockedPipeline(dep, render_channels="all", source=self.clock, links_for=self.links)
        transports = Transports(dict(dep.config.channels), getattr(self.store, "rate_limiter", None))
        return State(dep, pipeline, transports, Auth.from_settings(dep.config.server.auth))

    def swap(self, state: State) -> State:
        """Puts `state` in use (one reference assignment) and returns the old one."""
        old, self.state = self.state, state
        self.metrics.set_ruleset(state.deployment.ruleset_in_use.version, len(state.deployment.ruleset_in_use.rules))
        if old.transports is not state.transports:
            # Sends in flight may still hold the old transports: close their connections once those
            # sends are surely over (well past any transport timeout), not at once.
            timer = threading.Timer(TRANSPORT_GRACE_S, old.transports.close)
            timer.daemon = True
            timer.start()
        return old

    def links(self, notification_id: str) -> dict | None:
        """The signed rating and unsubscribe links for one notification, when tracking is set up."""
        if not self.public_url or not self.tracking_key:
            return None
        from engine.tracking.tokens import links_for

        return links_for(notification_id, None, self.public_url, self.tracking_key)

    @property
    def pipeline(self) -> ClockedPipeline:
        return self.state.pipeline

    @property
    def version(self) -> str:
        return self.state.deployment.ruleset_in_use.version

    def now(self) -> float:
        return self.clock.now()

    # -- waking the dispatcher

    def on_work(self, waker: Callable[[], None]) -> None:
        self._wakers.append(waker)

    def wake(self) -> None:
        for w in self._wakers:
            w()

    # -- actions

    def intake(self, items: Iterable[Any], source: str, remote: str | None = None,
               deliveries: Sequence[SourceDelivery | None] = ()) -> list[ItemStatus]:
        statuses = intake(items, self.pipeline, self.store, source, remote, now=self.clock.now_dt(),
                          deliveries=deliveries)
        self.metrics.intake(statuses)
        for s in statuses:
            if s.status == "unmatched":
                self.alert("unmatched", f"outcome {s.id} waits for a person: "
                                        f"{s.error or 'no rule matched'} (herald unmatched / herald route)")
        if any(self._due_soon(s.send_at) for s in statuses if s.notification):
            self.wake()
        return statuses

    def _due_soon(self, send_at: str | None) -> bool:
        """Whether a new notification is due before the dispatcher's next poll; one due later is found by that
        poll, so it needs no wake (a wake costs every worker a round of write transactions queued behind
        intake's commits)."""
        dispatcher = self.dispatcher
        if send_at is None or dispatcher is None:
            return True
        horizon = self.now() + self.clock.virtual(dispatcher.settings.poll_interval)
        return datetime.fromisoformat(send_at).timestamp() <= horizon

    def intake_grouped(self, item: Any, source: str, delivery: SourceDelivery | None = None,
                       remote: str | None = None) -> ItemStatus:
        """One item (a single POST, an ATS event) stored together with those arriving at the same time from
        `source` and `remote`: one transaction per group (engine/intake/group.py), durable when this returns."""
        def run(items: list, deliveries: list) -> list[ItemStatus]:
            return self.intake(items, source, remote, deliveries)

        return self._group((source, remote), run).submit(item, delivery)

    def intake_requests(self, items: Sequence[Any], source: str, remote: str | None = None) -> list[ItemStatus]:
        """One request's list of items (POST /v1/outcomes), stored in one transaction with those of the lists
        arriving at the same time from the same `source` and `remote` (group commit: one fsync for all of them,
        each request answered once its items are durable); the statuses of this request's items, in order."""

        def run(requests: list, _deliveries: list) -> list[list[ItemStatus]]:
            statuses = self.intake([i for r in requests for i in r], source, remote)
            out, at = [], 0
            for r in requests:
                out.append(statuses[at:at + len(r)])
                at += len(r)
            return out

        return self._group((source, remote, "lists"), run).submit(list(items))

    def _group(self, key: tuple, run: Callable[[list, list], Sequence[Any]]) -> GroupCommit:
        with self._groups_lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = GroupCommit(run)
            return group

    def leads(self) -> bool:
        """Whether this replica is the one that runs the periodic work now (False when the store cannot say)."""
        try:
            return self.store.is_leader()
        except Exception:  # noqa: BLE001 - not reachable: not the leader this round
            return False

    def alert(self, kind: str, text: str) -> None:
        """Queues an HR alert (engine.daemon.alerts); never raises into the caller."""
        try:
            self.alerts.add(kind, text)
        except Exception:
            log.exception("alert %s not queued", kind)

    def approve(self, outcome_id: str, reason: str | None = None, actor: str | None = None) -> actions.ActionResult:
        result = actions.approve(self.store, self.pipeline, outcome_id, self.now(), reason, actor)
        if result.notification:
            self.wake()
        elif result.status == "unmatched" and result.error:  # just planned, and unmatched (not a repeated approve)
            self.alert("unmatched", f"outcome {outcome_id} was approved but waits for a person: {result.error}")
        return result

    def withdraw(self, outcome_id: str, reason: str | None = None, actor: str | None = None) -> actions.ActionResult:
        return actions.withdraw(self.store, outcome_id, self.now(), reason, actor)
