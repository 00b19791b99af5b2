"""The pages a candidate sees from a tracking link: rating (zh-CN or English by the notification's locale), thanks,
already rated, expired, not valid, unsubscribe. Small, mobile-friendly, no script, no external resource; served
with a strict Content-Security-Policy by engine/tracking/routes.py."""
from __future__ import annotations

from html import escape
from collections.abc import Mapping

from fastapi.responses import HTMLResponse

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

PAGE_CSS = """
*{box-sizing:border-box}body{margin:0;background:#f5f7fa;color:#1f2933;
font:17px/1.5 -apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei","Segoe UI",sans-serif}
main{max-width:480px;margin:0 auto;padding:28px 18px}h1{font-size:22px;margin:0 0 8px}
p{margin:0 0 16px;color:#52606d}.box{background:#fff;border-radius:14px;padding:20px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}fieldset{border:0;margin:0 0 18px;padding:0}
legend{font-weight:600;margin-bottom:10px}.stars{display:grid;grid-template-columns:repeat(5,1fr);gap:8px}
.stars label{position:relative;display:flex;flex-direction:column;align-items:center;justify-content:center;
min-height:76px;border:2px solid #d9e2ec;border-radius:12px;cursor:pointer;background:#fff;text-align:center}
.stars input{position:absolute;opacity:0;width:100%;height:100%;margin:0;cursor:pointer}
.stars .s{font-size:30px;line-height:1;color:#bcccdc}.stars .n{font-weight:700}
.stars small{font-size:11px;color:#7b8794;line-height:1.2}
.stars input:checked~.s{color:#f0b429}.stars label:has(input:checked){border-color:#f0b429;background:#fffbea}
.stars input:focus-visible~.s{outline:3px solid #2f80ed}
textarea{width:100%;min-height:96px;font:inherit;padding:10px;border:2px solid #d9e2ec;border-radius:10px}
label.c{display:block;font-weight:600;margin-bottom:6px}
button{width:100%;margin-top:16px;padding:14px;font:inherit;font-weight:700;color:#fff;background:#2f80ed;
border:0;border-radius:12px;cursor:pointer}.err{color:#c81e1e;font-weight:600}
"""


def texts_for(locale: str | None) -> dict:
    return TEXT["zh"] if (locale or "zh").lower().startswith("zh") else TEXT["en"]


def page(t: dict, title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="{t["lang"]}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="robots" content="noindex, nofollow"><title>{escape(title)}</title>'
            f"<style>{PAGE_CSS}</style></head><body><main><div class=\"box\">{body}</div></main></body></html>")
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def message_page(t: dict, title_key: str, body_key: str, status: int = 200) -> HTMLResponse:
    return page(t, t[title_key], f"<h1>{escape(t[title_key])}</h1><p>{escape(t[body_key])}</p>", status)


def invalid_page() -> HTMLResponse:
    zh, en = TEXT["zh"], TEXT["en"]
    body = (f"<h1>{zh['invalid']} · {en['invalid']}</h1><p>{escape(zh['invalid_body'])}</p>"
            f"<p>{escape(en['invalid_body'])}</p>")
    return page(zh, f"{zh['invalid']} · {en['invalid']}", body, 404)


def rating_form(t: dict, score: int | None = None, comment: str = "", error: str | None = None,
                status: int = 200) -> HTMLResponse:
    stars = []
    for i, label in enumerate(t["labels"], 1):
        checked = " checked" if score == i else ""
        stars.append(f'<label><input type="radio" name="score" value="{i}" required{checked} '
                     f'aria-label="{i} - {escape(label)}"><span class="s" aria-hidden="true">★</span>'
                     f'<span class="n">{i}</span><small>{escape(label)}</small></label>')
    err = f'<p class="err" role="alert">{escape(error)}</p>' if error else ""
    body = (f"<h1>{escape(t['title'])}</h1><p>{escape(t['hint'])}</p>{err}"
            f'<form method="post"><fieldset><legend>{escape(t["question"])}</legend>'
            f'<div class="stars">{"".join(stars)}</div></fieldset>'
            f'<label class="c" for="comment">{escape(t["comment"])}</label>'
            f'<textarea id="comment" name="comment" maxlength="{MAX_COMMENT}">{escape(comment)}</textarea>'
            f'<button type="submit">{escape(t["send"])}</button></form>')
    return page(t, t["title"], body, status)


def unsubscribe_form(t: dict) -> HTMLResponse:
    body = (f"<h1>{escape(t['unsub_q'])}</h1><p>{escape(t['unsub_body'])}</p>"
            f'<form method="post"><button type="submit">{escape(t["unsub_send"])}</button></form>')
    return page(t, t["unsub_q"], body)


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
