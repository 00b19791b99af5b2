"""A deployment with sources for the tests: the daemon tests' deployment plus a `sources:` section."""
from __future__ import annotations

from pathlib import Path

from daemon_support import make_deployment

SECRET = "gh-webhook-secret-0123456789"

RULES = """version: 1
defaults:
  locale: en
  timezone: UTC
  channels: [email, sms]
  timing: {delay: 0s}
rules:
  - id: offer
    match: {decision: offer}
    template: any/generic
  - id: pass
    match: {decision: pass, stage: [first_round, second_round, final]}
    template: any/generic
  - id: reject-backend
    match: {decision: reject, role: [backend, frontend], reason: [lacks_project_experience, skills_gap]}
    template: any/generic
  - id: reject
    match: {decision: reject}
    template: any/generic
"""

GREENHOUSE = """sources:
  greenhouse:
    kind: greenhouse
    secret: "${GH_SECRET}"
    approve: APPROVE
    map:
      stage:  {from: application.current_stage.name, values: {"Phone Screen": first_round, "Onsite": second_round, "Final": final}}
      role:   {from: "application.jobs[0].name", values: {"Backend Engineer": backend}, default: other}
      reason: {from: application.rejection_reason.name, values: {"Lacks experience": lacks_project_experience}}
"""


def source_deployment(root: Path, sources: str = GREENHOUSE, approve: str = "auto") -> Path:
    make_deployment(root, rules=RULES)
    with open(root / "herald.yaml", "a") as fh:
        fh.write(sources.replace("APPROVE", approve))
    return root

ASHBY = """sources:
  ashby:
    kind: ashby
    secret: "${GH_SECRET}"
    map:
      stage:  {from: application.currentInterviewStage.title, values: {"Phone Screen": first_round, "Onsite": second_round}, default: null}
      role:   {from: application.job.title, values: {"Backend Engineer": backend}, default: other}
      reason: {from: application.archiveReason.text, values: {"Lacks experience": lacks_project_experience}}
"""

MOKA = """sources:
  moka:
    kind: moka
    secret: "${GH_SECRET}"
    map:
      stage:  {from: stage, values: {"初试": first_round, "复试": second_round}}
      role:   {from: jobTitle, values: {"后端工程师": backend}, default: other}
      reason: {from: archiveReasons, values: {"经验不足": lacks_project_experience}}
"""

GENERIC = """sources:
  hook:
    kind: generic
    secret: "${GH_SECRET}"
    signature_header: X-Hub-Signature-256
    event_id: event.id
    application_id: application.id
    map:
      decision: {from: application.result, values: {failed: reject, passed: pass}}
      stage: {from: application.round, values: {r1: first_round, r2: second_round}}
      role: {from: application.job, values: {be: backend}}
      candidate.name: {from: person.name}
      candidate.email: {from: person.email}
"""
