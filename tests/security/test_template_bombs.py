"""Item 1: template bombs. Every render has a time and size budget enforced from outside the render."""
from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from daemon_support import ScriptedTransport, make_deployment, outcome, post, wait_for
from engine.channels.base import ACCEPTED
from engine.config.deployment import load_deployment
from engine.render.budget import RenderLimits
from engine.render.templates import TemplateStore
from fake_robot import FakeRobot

HEADER = "{# herald: decisions=[reject, pass, offer, hold] #}\n"
LOOPS3 = ("{% for a in range(10000) %}{% for b in range(10000) %}{% for c in range(10000) %}"
          "{% endfor %}{% endfor %}{% endfor %}")
GROW = "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = EXPR %}{% endfor %}{{ ns.s|length }}"
BOMBS = {
    "nested-loops": LOOPS3,
    "loops-over-a-variable": "{% set r = range(10000) %}" + LOOPS3.replace("range(10000)", "r"),
    "macro-loops": "{% macro m() %}" + LOOPS3 + "{% endmacro %}{{ m() }}",
    "huge-output": "{% for a in range(10000) %}{% for b in range(10000) %}xxxxxxxxxx{% endfor %}{% endfor %}",
    "printed-many-times": "{% set s = 'x' * 100000 %}{% for a in range(10000) %}{{ s }}{% endfor %}",
    "set-block": "{% set s = 'x' * 100000 %}{% set b %}{% for a in range(10000) %}{{ s }}{% endfor %}{% endset %}{{ b|length }}",
    "replace-method": GROW.replace("EXPR", "ns.s.replace('a', ns.s)"),
    "replace-filter": GROW.replace("EXPR", "ns.s|replace('a', ns.s)"),
    "replace-empty": "{% set s = 'x' * 50000 %}{{ s.replace('', s)|length }}",
    "concat": GROW.replace("EXPR", "ns.s ~ ns.s"),
    "plus": GROW.replace("EXPR", "ns.s + ns.s"),
    "slicing": "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l[:] %}{% endfor %}{{ ns.l|length }}",
    "join": "{% set s = 'x' * 100000 %}{{ ([s] * 10000)|join }}",
    "power-chain": "{{ ((9 ** 256) ** 256) ** 256 }}",
    "squaring": "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}{{ ns.n > 1 }}",
}


def _render_in_thread(store: TemplateStore, name: str, context: dict, timeout: float = 20.0):
    """The render's result, or None when it did not end within `timeout` (the thread is left behind)."""
    box: list = []
    t = threading.Thread(target=lambda: box.append(store.render(name, (), "dingtalk", context)), daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else None


@pytest.mark.parametrize("name", sorted(BOMBS))
def test_every_bomb_is_stopped_within_its_budget_and_located(tmp_path: Path, name: str) -> None:
    (tmp_path / f"{name}.j2").write_text(HEADER + "{% block dingtalk %}ok " + BOMBS[name] + "{% endblock %}\n")
    store = TemplateStore(tmp_path, RenderLimits(time_ms=200, output_chars=256 * 1024))
    result = _render_in_thread(store, name, {"decision": "reject"})
    assert result is not None, f"{name}: the render did not stop within 20 s"
    assert result.message is None
    assert result.error.startswith(f"{tmp_path / name}.j2:2"), result.error
    assert "render budget exceeded" in result.error or "too large for a template" in result.error


def test_a_normal_render_is_unaffected_and_the_budget_comes_from_config(tmp_path: Path) -> None:
    (tmp_path / "t.j2").write_text(HEADER + "{% block dingtalk %}{% for i in range(1000) %}{{ i }}{% endfor %}{% endblock %}\n")
    assert TemplateStore(tmp_path).render("t", (), "dingtalk", {"decision": "reject"}).ok
    tight = TemplateStore(tmp_path, RenderLimits(time_ms=200, output_chars=1000))
    assert "output larger than 1,000 characters" in tight.render("t", (), "dingtalk", {"decision": "reject"}).error
    root = make_deployment(tmp_path / "dep")
    with open(root / "herald.yaml", "a") as f:
        f.write("render: {time_ms: 50, output_kb: 1}\n")
    dep = load_deployment([str(root)])
    assert dep.ok and dep.templates.limits == RenderLimits(time_ms=50, output_chars=1024)


def test_validate_reports_a_bomb_located_and_quickly(tmp_path: Path, run_cli) -> None:
    root = make_deployment(tmp_path)
    (root / "templates" / "any" / "bomb.j2").write_text(
        HEADER + "{% block dingtalk %}\n{{ candidate.name }}\n" + LOOPS3 + "\n{% endblock %}\n")
    res = run_cli(["validate", str(root)])
    assert res.exit_code == 1
    assert "bomb.j2:4:1: error: block dingtalk fails to render: render budget exceeded: still running after 200 ms of CPU time" \
        in res.output, res.output


TRIGGER = ('{% if candidate.name == "trigger" %}' + LOOPS3 + "{% endif %}")


@pytest.mark.slow
def test_the_daemon_fails_the_channel_alerts_hr_and_goes_on(tmp_path: Path, daemons, monkeypatch) -> None:
    """A template that only explodes for some data: intake answers, /healthz answers, other messages go out."""
    token, secret = "robot-token-0123456789", "SECrobot0123456789abcdef"
    monkeypatch.setenv("T_ROBOT_TOKEN", token)
    monkeypatch.setenv("T_ROBOT_SECRET", secret)
    with FakeRobot(access_token=token, secret=secret) as robot:
        chans = ("  email: {transport: outbox}\n  sms: {transport: outbox}\n"
                 f'  hr: {{transport: dingtalk-robot, access_token: "${{T_ROBOT_TOKEN}}", '
                 f'secret: "${{T_ROBOT_SECRET}}", base_url: "{robot.base_url}"}}')
        root = make_deployment(tmp_path, channels=chans)
        generic = root / "templates" / "any" / "generic.j2"
        generic.write_text(generic.read_text().replace("{% block email %}", "{% block email %}" + TRIGGER))
        with open(root / "herald.yaml", "a") as f:
            f.write('alerts: {channel: hr, interval: 1m}\n')
        d = daemons(root)
        d.runtime.alerts.gather = 0.2
        sent = ScriptedTransport("email", ACCEPTED)
        d.runtime.state.transports.put("email", sent)
        d.runtime.state.transports.put("sms", ScriptedTransport("sms", ACCEPTED))
        bomb = outcome("bomb-1", candidate={"name": "trigger", "email": "t@example.com"})  # no phone: no fallback
        r = post(d.url, [bomb, outcome("fine-1")])
        assert r.status_code == 202
        assert httpx.get(d.url + "/healthz", timeout=5).status_code == 200
        n = wait_for(lambda: (x := d.runtime.store.get_notification("bomb-1#1").notification).state == "failed" and x)
        assert "render budget exceeded" in (n.last_error or ""), n
        wait_for(lambda: d.runtime.store.get_notification("fine-1#1").notification.state == "delivered")
        assert [e.to for e in sent.sent] == ["ann@example.com"]
        wait_for(lambda: robot.received, timeout=10)
        text = "".join(m["markdown"]["text"] for m in robot.received)
        assert "**template over its render budget**" in text and "bomb-1#1" in text and "generic.j2" in text
