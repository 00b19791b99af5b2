"""The pages a candidate sees from a tracking link: rating (zh-CN or English by the notification's locale), thanks,
already rated, expired, not valid, unsubscribe. Small, mobile-friendly, no script, no external resource; served
with a strict Content-Security-Policy by engine/tracking/routes.py. The HTML is Jinja2 templates (autoescaped)
in engine/tracking/templates/; this module holds their texts and the form's parsing."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined

MAX_COMMENT = 1000
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {**NO_STORE, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                "X-Frame-Options": "DENY"}


TEXT = {
    "zh": {
        "lang": "zh-CN", "title": "面试结果通知满意度", "question": "您对这次面试结果通知满意吗?",
        "hint": "请选择 1-5 星(5 星为非常满意),也可以留下您的意见。",
        "labels": ("很不满意", "不满意", "一般", "满意", "非常满意"), "comment": "意见或建议(选填)",
        "send": "提交", "thanks": "感谢您的反馈!", "thanks_body": "您的评价已收到,它会帮助我们改进与候选人的沟通。",
        "already": "您已经评价过了", "already_body": "每条通知只能评价一次,感谢您的反馈。",
        "invalid": "链接无效", "invalid_body": "这个链接无法识别,请检查是否完整复制了链接。",
        "expired": "链接已过期", "expired_body": "这个评价链接已经过期,感谢您的关注。",
        "need_score": "请选择 1 到 5 星。", "too_long": f"意见请不超过 {MAX_COMMENT} 个字。",
        "busy": "系统繁忙,请稍后再试。",
        "unsub_q": "退订招聘消息", "unsub_body": "确认后,我们会记录您不希望再收到此类招聘消息的请求。",
        "unsub_send": "确认退订", "unsub_done": "已记录您的退订请求", "unsub_done_body": "感谢您的告知。",
    },
    "en": {
        "lang": "en", "title": "How did we do?", "question": "How satisfied are you with how we told you the result?",
        "hint": "Choose 1 to 5 stars (5 is very satisfied); a comment is welcome but optional.",
        "labels": ("Very poor", "Poor", "OK", "Good", "Very good"), "comment": "Comment (optional)",
        "send": "Send", "thanks": "Thank you!", "thanks_body": "We have your rating; it helps us talk better with "
                                                               "candidates.",
        "already": "Already rated", "already_body": "Each message can be rated once. Thank you for your feedback.",
        "invalid": "Link not valid", "invalid_body": "This link is not one we recognise; check that it was copied "
                                                     "whole.",
        "expired": "Link expired", "expired_body": "This rating link has expired. Thank you for your interest.",
        "need_score": "Please choose 1 to 5 stars.", "too_long": f"Please keep the comment under {MAX_COMMENT} "
                                                                  f"characters.",
        "busy": "We are busy right now; please try again in a moment.",
        "unsub_q": "Stop recruiting messages", "unsub_body": "Confirm, and we will record that you do not want "
                                                             "further recruiting messages like this one.",
        "unsub_send": "Confirm", "unsub_done": "Your request is recorded", "unsub_done_body": "Thank you for "
                                                                                           "letting us know.",
    },
}

_ENV = Environment(loader=PackageLoader("engine.tracking", "templates"), autoescape=True,
                   undefined=StrictUndefined)


def _render(name: str, **context: Any) -> str:
    return _ENV.get_template(name).render(**context)


def texts_for(locale: str | None) -> dict:
    return TEXT["zh"] if (locale or "zh").lower().startswith("zh") else TEXT["en"]


def page(t: dict, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """One candidate page from its template (engine/tracking/templates), autoescaped, with PAGE_HEADERS."""
    return HTMLResponse(_render(template, t=t, **context), status_code=status, headers=PAGE_HEADERS)


def message_page(t: dict, title_key: str, body_key: str, status: int = 200) -> HTMLResponse:
    return page(t, "message.html.j2", status, title=t[title_key], text=t[body_key])


def invalid_page() -> HTMLResponse:
    zh, en = TEXT["zh"], TEXT["en"]
    return page(zh, "invalid.html.j2", 404, title=f"{zh['invalid']} · {en['invalid']}", zh=zh, en=en)


def rating_form(t: dict, score: int | None = None, comment: str = "", error: str | None = None,
                status: int = 200) -> HTMLResponse:
    return page(t, "rating.html.j2", status, title=t["title"], score=score, comment=comment, error=error,
                max_comment=MAX_COMMENT)


def unsubscribe_form(t: dict) -> HTMLResponse:
    return page(t, "unsubscribe.html.j2", title=t["unsub_q"])


def parse_rating(form: Mapping[str, list]) -> tuple[int | None, str, str | None]:
    """(score, comment, error key) from a submitted form."""
    raw = (form.get("score") or [""])[0].strip()
    comment = (form.get("comment") or [""])[0].replace("\r\n", "\n").strip()
    score = int(raw) if raw.isdigit() and len(raw) == 1 else None
    if score is None or not 1 <= score <= 5:
        return None, comment, "need_score"
    if len(comment) > MAX_COMMENT:
        return score, comment, "too_long"
    return score, comment, None


__all__ = [
    "MAX_COMMENT",
    "NO_STORE",
    "PAGE_HEADERS",
    "TEXT",
    "invalid_page",
    "message_page",
    "page",
    "parse_rating",
    "rating_form",
    "texts_for",
    "unsubscribe_form",
]
