"""The HTTP answer says which template file a posted outcome's message was planned with, as dry-run does (issue
10: "dry-run, --explain, the API and the attempt record show the file used"): the candidate's locale, its
parents, the bare file, then the rule's locale. Against a real daemon; the send renders again with the files of
that moment (tests/daemon/test_send_time_render.py)."""
from __future__ import annotations

import pytest

from daemon_support import TEMPLATE, make_deployment, outcome, post

RULES = """version: 1
defaults:
  locale: zh-CN
  timezone: Asia/Shanghai
  channels: [email]
  timing: {delay: 1h}
rules:
  - id: reject
    match: {decision: reject}
    template: any/generic
  - id: hold
    match: {decision: hold}
    template: any/generic
"""


@pytest.mark.slow
def test_the_answer_names_the_template_file_and_locale(tmp_path, daemons):
    root = make_deployment(tmp_path, rules=RULES)
    (root / "templates" / "any" / "generic.zh-CN.j2").write_text(TEMPLATE.replace("MARK", "zh"))
    d = daemons(root)
    en = outcome("f-en", candidate={"name": "Ann", "email": "ann@example.com", "locale": "en-US"})
    zh = outcome("f-zh", candidate={"name": "Li", "email": "li@example.com", "locale": "zh-CN"})
    bare = outcome("f-none", candidate={"name": "Bo", "email": "bo@example.com"})
    held = outcome("f-held", approved=False, candidate={"name": "Cy", "email": "cy@example.com", "locale": "en"})
    r = post(d.url, [en, zh, bare, held])
    assert r.status_code == 202, r.text
    # the file as dry-run and the outbox's meta name it (the path the deployment was loaded with: absolute here)
    got = {i["id"]: (i["status"], i.get("locale"), i.get("file", "").removeprefix(str(root) + "/"))
           for i in r.json()["items"]}
    assert got == {
        "f-en": ("matched", None, "templates/any/generic.j2"),           # en-US, en: no file; the bare one
        "f-zh": ("matched", "zh-CN", "templates/any/generic.zh-CN.j2"),
        "f-none": ("matched", "zh-CN", "templates/any/generic.zh-CN.j2"),  # no candidate locale: the rule's
        "f-held": ("held", None, "templates/any/generic.j2"),
    }
