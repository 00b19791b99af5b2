"""SMS in China must use a pre-approved template: a template's header maps to a TemplateCode and its variables.

A template used on an `aliyun-sms` channel declares, in its header comment,

    {# herald: decisions=[reject] sms_code=SMS_123456 sms_params={name: candidate.name, job: position.title} #}

`sms_code` is the approved TemplateCode (the channel's `template_code` setting serves when it is absent);
`sms_params` maps each template variable to an outcome field path, or to `{from: field.path, default: text}`
for an optional field (the text stands in when the outcome lacks it, so no variable is sent empty). The `sms` block stays the text that
the outbox shows and whose length is measured; the provider builds the real text from its approved
template and these variables. Validation checks every variable's field exists and that the sample
outcome's values are within the provider's limits; the dispatcher builds TemplateParam from the same map.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from collections.abc import Iterable, Mapping

from engine.channels.capabilities import TEMPLATE_SMS
from engine.errors import Diagnostic, Loc
from engine.routing.router import lookup
from engine.rules.schemas import outcome_fields, sample_outcome

if TYPE_CHECKING:
    from engine.config.settings import Config
    from engine.model import Rule
    from engine.render.header import TemplateMeta
    from engine.render.templates import TemplateStore

SMS_TRANSPORTS = TEMPLATE_SMS  # engine.channels.capabilities
_CODE = re.compile(r"^SMS_\d+$")


def sms_channels(config: Config) -> set:
    """Names of the configured channels that send through a template-SMS provider."""
    return {name for name, ch in config.channels.items() if ch.transport in SMS_TRANSPORTS}


def sms_mapping(meta: TemplateMeta | None, channel_settings: Mapping[str, Any]) -> tuple[str | None, dict]:
    """(TemplateCode, {variable: field path}) for a template file's header on a channel."""
    extra = dict(getattr(meta, "extra", {}) or {})
    code = extra.get("sms_code") or channel_settings.get("template_code")
    params = extra.get("sms_params") or {}
    return (str(code) if code else None), (dict(params) if isinstance(params, dict) else {})


def param_source(spec: Any) -> tuple[Any, str]:
    """(field path, default text) of one sms_params entry: `field.path` or `{from: field.path, default: text}`."""
    if isinstance(spec, dict):
        default = spec.get("default")
        return spec.get("from"), "" if default is None else str(default)
    return spec, ""


def template_params(params: Mapping[str, Any], outcome: Mapping) -> dict:
    """The TemplateParam values for one outcome (the entry's default, else '', where the field is missing)."""
    out = {}
    for name, spec in params.items():
        path, default = param_source(spec)
        value = lookup(outcome, str(path))
        if isinstance(value, list):
            value = "、".join(str(v) for v in value)
        out[str(name)] = default if value is None or value == "" else str(value)
    return out


def check_sms_templates(cfg: Config, store: TemplateStore, rules: Iterable[Rule]) -> list[Diagnostic]:
    """Every template a rule sends on an SMS-provider channel maps to an approved code and valid variables."""
    from engine.channels.aliyun_sms import check_sms_params

    channels = sms_channels(cfg)
    if not channels:
        return []
    catalog = outcome_fields()
    sample = sample_outcome()
    seen: set = set()
    out: list[Diagnostic] = []
    for rule in rules:
        for channel in (c for c in rule.channels if c in channels):
            settings = cfg.channels[channel].settings
            for name in rule.templates:
                for file in store.files(name):
                    if (file.path, channel) in seen or file.meta is None:
                        continue
                    seen.add((file.path, channel))
                    loc = Loc(file.path, file.meta.header_line, 1)
                    code, params = sms_mapping(file.meta, settings)
                    if not code:
                        out.append(loc.error("sms-template", f"{name} is sent on {channel} (aliyun-sms): its header "
                                                             f"needs sms_code=SMS_... (the approved TemplateCode)"))
                    elif not _CODE.match(code):
                        out.append(loc.error("sms-template", f'sms_code "{code}" is not an Aliyun TemplateCode (SMS_ and digits)'))
                    raw = (file.meta.extra or {}).get("sms_params")
                    if raw is not None and not isinstance(raw, dict):
                        out.append(loc.error("sms-template", "sms_params must be a mapping {variable: field.path}"))
                        continue
                    bad = False
                    for var, spec in params.items():
                        path, _default = param_source(spec)
                        if not isinstance(path, str) or not catalog.knows(path):
                            hint = catalog.suggest(str(path))
                            out.append(loc.error("sms-template", f'sms_params {var}: "{path}" is not an outcome field'
                                                 + (f' (did you mean "{hint}"?)' if hint else "")))
                            bad = True
                    if not bad and params:
                        out.extend(loc.error("sms-template", f"{problem} (with the sample outcome)")
                                   for problem in check_sms_params(template_params(params, sample)))
    return out
