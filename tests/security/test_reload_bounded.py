"""Item 4: a reload that does not end in time is given up after server.reload_timeout; the lock is freed, /healthz says so."""
from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from daemon_support import make_deployment, wait_for
from engine.daemon.reload import reload

SLOW = ("{# herald: decisions=[reject] #}\n"
        + "".join(f"{{% block b{i} %}}{{% for a in range(10000) %}}{{% for b in range(10000) %}}{{% endfor %}}"
                  f"{{% endfor %}}{{% endblock %}}\n" for i in range(3)))


@pytest.mark.slow
def test_a_reload_that_does_not_end_is_given_up_and_the_next_one_applies(tmp_path: Path, daemons) -> None:
    root = make_deployment(tmp_path)
    with open(root / "herald.yaml", "a") as f:  # each render may take 1.5 s of CPU: validating SLOW takes ~5 s
        f.write("server: {reload_timeout: 1s}\nrender: {time_ms: 1500}\n")
    d = daemons(root)
    (root / "templates" / "any" / "slow.j2").write_text(SLOW)
    box: list = []
    t = threading.Thread(target=lambda: box.append(reload(d.runtime, "test")), daemon=True)
    t.start()
    t.join(15)
    assert box == [False], "the reload was not given up"
    assert not d.runtime.reload_lock.locked()
    health = httpx.get(d.url + "/healthz").json()
    assert health["reload_stuck"] is True and health["status"] == "degraded" and health["reload_failed"]
    assert "herald_reload_stuck 1.0" in httpx.get(d.url + "/metrics").text
    assert "did not finish within 1 s" in d.runtime.last_reload_error[0]

    (root / "templates" / "any" / "slow.j2").unlink()
    old = d.runtime.version
    generic = root / "templates" / "any" / "generic.j2"
    generic.write_text(generic.read_text().replace("v1", "v2"))
    assert reload(d.runtime, "test", timeout=60) is True and d.runtime.version != old
    wait_for(lambda: httpx.get(d.url + "/healthz").json()["reload_stuck"] is False, timeout=60)
