"""Render budgets: every template render gets a time and a size limit, enforced from outside the render.

Time: one watchdog thread per process looks at every render in progress (every 10 ms) and, when one
has used more CPU time than its budget, raises `BudgetExceeded` inside the rendering thread (CPython's PyThreadState_SetAsyncExc),
which interrupts the template wherever it loops: Jinja compiles templates to Python, and an
asynchronous exception is delivered at the next loop jump or call. `BudgetExceeded` derives from
BaseException so no `except Exception` inside Jinja or the sandbox can swallow it.

Size: the sandbox charges what a template builds (printed values, filter and method results, `~`,
`+`, `*`) to the render in progress (`charge`): one value larger than the output limit, or more than
`ALLOCATION_FACTOR` times the output limit built in all, stops the render at once (a C-level string
operation cannot be interrupted, so it is the size of each one that is capped). The rendered text is
measured before it is joined.

A render outside `guarded` is not budgeted and pays nothing (the benchmark's unguarded baseline).
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, TypeVar
from collections.abc import Callable

__all__ = ["BUDGET_ERROR", "DEFAULT_LIMITS", "BudgetExceeded", "RenderLimits", "charge", "guarded", "limits_from_config"]

T = TypeVar("T")
ALLOCATION_FACTOR = 32      # everything a render may build, in multiples of its output limit
BUDGET_ERROR = "render budget exceeded"  # how every over-budget error begins
_BUILT = (str, list, tuple, dict)
_SMALL = 64                 # printed values up to this length are not charged (time bounds them)


class BudgetExceeded(BaseException):
    """A render went over its budget (raised in the rendering thread; never escapes `guarded`)."""

    def __init__(self, reason: str = "time") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RenderLimits:
    """The budget of one render: CPU time in milliseconds and output size in characters."""

    time_ms: int = 200
    output_chars: int = 256 * 1024

    @property
    def allocation_chars(self) -> int:
        return self.output_chars * ALLOCATION_FACTOR

    def describe(self, reason: str) -> str:
        """The error text for a render stopped for `reason` (time, output, value, built)."""
        what = {"time": f"still running after {self.time_ms} ms of CPU time",
                "output": f"output larger than {self.output_chars:,} characters",
                "value": f"builds a value larger than {self.output_chars:,} characters",
                }.get(reason, f"builds more than {self.allocation_chars:,} characters in all")
        return f"{BUDGET_ERROR}: {what}"


DEFAULT_LIMITS = RenderLimits()


def limits_from_config(render: Any) -> RenderLimits:
    """The `render:` section of herald.yaml (`time_ms`, `output_kb`), defaults for what is absent."""
    render = render if isinstance(render, dict) else {}
    time_ms = render.get("time_ms", DEFAULT_LIMITS.time_ms)
    output_kb = render.get("output_kb", DEFAULT_LIMITS.output_chars // 1024)
    return RenderLimits(int(time_ms), int(output_kb) * 1024)


class _Slot:
    """One thread's render in progress (at most one per thread: renders do not nest)."""

    __slots__ = ("active", "clock", "cpu0", "limits", "seen", "spent", "ticket", "tid")

    def __init__(self, tid: int) -> None:
        self.tid = tid
        self.clock = time.pthread_getcpuclockid(tid)  # the thread's own CPU clock
        self.active = False
        self.ticket: list = []  # one item while the render runs: whoever pops it (render or watchdog) ends it
        self.spent = 0
        self.limits = DEFAULT_LIMITS
        self.seen: list = []  # the ticket of the render the watchdog last saw begin, and the CPU time then
        self.cpu0 = 0.0


_local = threading.local()
_lock = threading.Lock()
_slots: dict[int, _Slot] = {}
_watchdog: threading.Thread | None = None
_watchdog_pid = 0
_set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
_set_async_exc.argtypes = (ctypes.c_ulong, ctypes.py_object)
_TICK = 0.01  # seconds between the watchdog's looks


def _look(slot: _Slot) -> None:
    """Stop the slot's render when it has used more CPU than its budget since the watchdog saw it begin.

    CPU time of the rendering thread, not wall time: a render waiting for the GIL or for a busy machine
    is not charged, so a loaded machine never fails a sound template.
    """
    ticket = slot.ticket
    if not ticket:
        return
    used = time.clock_gettime(slot.clock)
    if ticket is not slot.seen:  # a render the watchdog has not seen yet: its CPU time counts from now
        slot.seen, slot.cpu0 = ticket, used
        return
    if used - slot.cpu0 > slot.limits.time_ms / 1000:
        with _lock:  # the render, finding its ticket taken, waits for this before withdrawing the exception
            try:
                ticket.pop()  # atomic: either the render has ended (nothing to do) or it never will unnoticed
            except IndexError:
                return
            _set_async_exc(slot.tid, ctypes.py_object(BudgetExceeded))


def _watch() -> None:
    ticks = 0
    while True:
        time.sleep(_TICK)
        ticks += 1
        if ticks % 500 == 0:  # forget threads that have ended
            alive = {t.ident for t in threading.enumerate()}
            with _lock:
                for tid in [t for t in _slots if t not in alive]:
                    del _slots[tid]
        for slot in list(_slots.values()):
            with contextlib.suppress(OSError):  # the thread ended between the listing and the look
                _look(slot)


def _ensure_watchdog() -> None:
    global _watchdog, _watchdog_pid
    if _watchdog is not None and _watchdog_pid == os.getpid() and _watchdog.is_alive():
        return
    with _lock:
        if _watchdog is not None and _watchdog_pid == os.getpid() and _watchdog.is_alive():
            return
        _watchdog = threading.Thread(target=_watch, name="herald-render-watchdog", daemon=True)
        _watchdog_pid = os.getpid()
        _watchdog.start()


def _after_fork() -> None:
    """In a forked child only this thread exists: a fresh lock, no slots, the watchdog started anew."""
    global _lock, _watchdog, _watchdog_pid
    _lock = threading.Lock()
    _slots.clear()
    _watchdog = None
    _watchdog_pid = 0
    _local.__dict__.pop("slot", None)


os.register_at_fork(after_in_child=_after_fork)


def _finish(slot: _Slot, ticket: list) -> None:
    """End the render: no exception may be raised in this thread for it afterwards."""
    slot.active = False
    try:
        ticket.pop()  # the common case: the watchdog never took it, and now never will
        return
    except IndexError:
        pass
    _withdraw(slot)


def _withdraw(slot: _Slot) -> None:
    """The end of a render whose ticket the watchdog took: its exception is set (the watchdog holds the lock
    until then) or delivered; withdrawn here if still pending, consumed if delivered on the way out."""
    while True:
        try:
            with _lock:
                _set_async_exc(slot.tid, ctypes.py_object())  # withdraw it if still pending
            return
        except BudgetExceeded:  # delivered on the way out: consumed
            continue


def guarded(limits: RenderLimits, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(*args, **kwargs) under `limits`; raises BudgetExceeded when the render goes over."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is None:
        _ensure_watchdog()
        tid = threading.get_ident()
        slot = _local.slot = _Slot(tid)
        with _lock:
            _slots[tid] = slot
    elif slot.active:  # nested: the outer render's budget covers it
        return fn(*args, **kwargs)
    slot.spent = 0
    slot.limits = limits
    slot.active = True
    slot.ticket = ticket = [True]
    try:
        try:
            return fn(*args, **kwargs) if kwargs else fn(*args)
        finally:  # _finish(slot, ticket), its common case inline
            slot.active = False
            try:
                ticket.pop()  # the watchdog never took it, and now never will
            except IndexError:
                _withdraw(slot)
    except BudgetExceeded:  # possibly delivered before the finally ran to its end: _finish (idempotent; the
        _finish(slot, ticket)  # watchdog raises at most once per render, so nothing is pending after it)
        raise


def charge_to(slot: _Slot, size: int, then: int = 0) -> None:
    """charge_size for a render known to be in progress (the thread's slot, active); `then`, when given, is
    charged after it as a second value (a filter's result after its arguments), in the same call."""
    output = slot.limits.output_chars
    allocation = output * ALLOCATION_FACTOR  # limits.allocation_chars, without the call
    if size > output:
        raise BudgetExceeded("value")
    slot.spent += size
    if slot.spent > allocation:
        raise BudgetExceeded("built")
    if then:  # (the same three steps for the second value)
        if then > output:
            raise BudgetExceeded("value")
        slot.spent += then
        if slot.spent > allocation:
            raise BudgetExceeded("built")


def charge(value: Any) -> Any:
    """Count `value` (a string or collection a template built) against the render in progress."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is None or not slot.active:
        return value
    if isinstance(value, _BUILT):  # not range() or generators: they hold nothing
        charge_size(len(value))
    return value


def charge_size(size: int) -> None:
    """Count a value about to be built, of `size` characters, against the render in progress."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is None or not slot.active:
        return
    charge_to(slot, size)


def charge_printed_total(parts: tuple) -> None:
    """The pieces of `a ~ b ~ ...`, before they are joined."""
    slot: _Slot | None = getattr(_local, "slot", None)
    if slot is not None and slot.active:
        charge_size(sum(len(p) for p in parts if p.__class__ is str))


def charge_printed(value: Any) -> None:
    """A printed string: charged when longer than a few characters (short ones are bounded by time)."""
    if len(value) > _SMALL:
        charge(value)


def check_output(parts: list, limits: RenderLimits | None = None) -> None:
    """The pieces of a rendered block, measured before they are joined: against `limits` (the budget the caller
    runs under), else this thread's render in progress (none: not measured)."""
    if limits is None:
        slot: _Slot | None = getattr(_local, "slot", None)
        if slot is None or not slot.active:
            return
        limits = slot.limits
    if sum(map(len, parts)) > limits.output_chars:
        raise BudgetExceeded("output")
