"""The console's words in English and Simplified Chinese, and the language a browser asks for (Accept-Language)."""
from __future__ import annotations

from collections.abc import Callable

LANGS = ("en", "zh-CN")

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "herald": "herald", "console": "Console", "nav": "Pages", "today": "Today", "approvals": "Approvals",
        "unmatched": "Unmatched", "dead_letters": "Dead letters", "candidates": "Candidates", "replies": "Replies",
        "rules": "Rules", "preview": "Preview", "report": "Report", "impact": "Impact",
        "sign_in": "Sign in", "sign_out": "Sign out", "name": "Name", "password": "Password",
        "signed_in_as": "Signed in as", "role": "role", "anonymous": "anonymous (loopback, no accounts configured)",
        "bad_sign_in": "Wrong name or password.", "locked": "Too many failed sign-ins: try again in {minutes} min.",
        "csrf": "This form has expired or did not come from this console: reload the page and try again.",
        "need_role": "Your role ({role}) does not allow this: it needs {need}.",
        "not_found": "Nothing here.", "bad_parameter": "This address has a parameter the page cannot take: {detail}",
        "disabled": "The console is switched off (console.enabled: false).",
        "ruleset": "Rule set", "reload_failed": "The last reload was refused: the previous rule set stays in use.",
        "back": "Back", "error": "Error", "done": "Done", "none": "Nothing to show.",
        "select": "Select", "select_all": "Select all", "reason": "Reason", "approve": "Approve",
        "withdraw": "Withdraw", "approve_selected": "Approve selected", "withdraw_selected": "Withdraw selected",
        "outcome": "Outcome", "candidate": "Candidate", "decision": "Decision", "rule": "Rule",
        "channel": "Channel", "state": "State", "send_at": "Send at", "received": "Received", "message": "Message",
        "subject": "Subject", "to": "To", "no_message": "No rule matches now: nothing would be sent.",
        "counts_rule": "Today by rule", "counts_channel": "Today by channel", "next_sends": "Next sends",
        "failures": "Failures needing attention", "paused": "Sending is paused", "running": "Sending is on",
        "pause": "Pause sending", "resume": "Resume sending", "all_channels": "all channels",
        "cancel": "Cancel", "send_now": "Send now", "reschedule": "Reschedule", "at": "At",
        "search": "Search", "query": "Name, e-mail, phone or id", "history": "History", "when": "When",
        "what": "What", "who": "Who", "detail": "Detail", "more": "More", "resubmit": "Resubmit",
        "raw_body": "Raw body", "route": "Route", "to_rule": "To rule", "mark_handled": "Mark handled",
        "handled": "Handled", "template": "Template", "locale": "Locale", "sample": "Sample outcome",
        "stored": "Stored outcome id", "segments": "SMS segments", "hits": "Hits", "count": "Count",
        "source": "Source", "id": "Id", "total": "Total", "status": "Status", "version": "Version",
        "override_window": "Send now even in a closed send window",
        "window_closed": "its send window is closed until {until}: it goes then (tick the override to send now)",
        "window_overridden": "its send window is closed until {until}: overridden, it goes now",
        "impact_intro": "Paste a changed rule file (its name replaces that file; a new name adds one) and see which "
                        "recent outcomes the changed rules would send differently. Nothing is stored or sent.",
        "rule_file": "Rule file", "days": "Outcomes of the last N days", "proposed_rules": "Proposed rule file",
        "server_path": "Or a rule file or directory on the server (admin)", "compare": "Compare",
        "proposed_invalid": "The proposed rules are invalid: nothing was compared.",
        "would_change": "{changed} of {outcomes} outcome(s) received in the last {days} day(s) would be treated "
                        "differently",
        "impact_budget": "Only the oldest {budget} outcomes were compared.", "field": "What changes",
        "moves": "Moves between rules", "examples": "Examples", "before": "Now", "after": "With the change",
        "field_rule": "Rule", "field_template": "Template", "field_channels": "Channel order",
        "field_send_at": "Send time",
        "send_test": "Send a test to me", "test_channel": "Test on channel",
        "test_sent": "Test sent to {to} on {channel} (recorded as a test; not counted in the report).",
        "test_failed": "The test to {to} was not sent: {error}",
        "no_test_address": "Your account has no address for {channel}: a test goes to your own e-mail address "
                           "(email in your console account), on an e-mail channel.",
    },
    "zh-CN": {
        "herald": "herald", "console": "控制台", "nav": "页面", "today": "今日", "approvals": "待审批",
        "unmatched": "未匹配", "dead_letters": "无效数据", "candidates": "候选人", "replies": "回复",
        "rules": "规则", "preview": "预览", "report": "报告", "impact": "变更影响",
        "sign_in": "登录", "sign_out": "退出", "name": "用户名", "password": "密码",
        "signed_in_as": "当前用户", "role": "角色", "anonymous": "匿名（本机访问，未配置账号）",
        "bad_sign_in": "用户名或密码错误。", "locked": "登录失败次数过多：请 {minutes} 分钟后再试。",
        "csrf": "表单已过期或并非来自本控制台：请刷新页面后重试。",
        "need_role": "您的角色（{role}）无权执行此操作：需要 {need}。",
        "not_found": "页面不存在。", "bad_parameter": "此链接含有页面无法接受的参数：{detail}",
        "disabled": "控制台已关闭（console.enabled: false）。",
        "ruleset": "规则集", "reload_failed": "上次重新加载被拒绝：仍在使用之前的规则集。",
        "back": "返回", "error": "错误", "done": "完成", "none": "暂无内容。",
        "select": "选择", "select_all": "全选", "reason": "原因", "approve": "批准",
        "withdraw": "撤回", "approve_selected": "批准所选", "withdraw_selected": "撤回所选",
        "outcome": "结果", "candidate": "候选人", "decision": "决定", "rule": "规则",
        "channel": "渠道", "state": "状态", "send_at": "发送时间", "received": "接收时间", "message": "消息",
        "subject": "主题", "to": "收件人", "no_message": "当前没有匹配的规则：不会发送任何消息。",
        "counts_rule": "今日（按规则）", "counts_channel": "今日（按渠道）", "next_sends": "即将发送",
        "failures": "需要处理的失败", "paused": "发送已暂停", "running": "发送进行中",
        "pause": "暂停发送", "resume": "恢复发送", "all_channels": "全部渠道",
        "cancel": "取消", "send_now": "立即发送", "reschedule": "改期", "at": "时间",
        "search": "搜索", "query": "姓名、邮箱、电话或编号", "history": "历史", "when": "时间",
        "what": "事件", "who": "操作人", "detail": "详情", "more": "更多", "resubmit": "重新提交",
        "raw_body": "原始内容", "route": "分配", "to_rule": "分配到规则", "mark_handled": "标记为已处理",
        "handled": "已处理", "template": "模板", "locale": "语言", "sample": "示例结果",
        "stored": "已存结果编号", "segments": "短信条数", "hits": "命中", "count": "数量",
        "source": "来源", "id": "编号", "total": "合计", "status": "状态", "version": "版本",
        "override_window": "发送时段已关闭时仍立即发送",
        "window_closed": "发送时段关闭至 {until}：届时发送（勾选强制发送可立即发送）",
        "window_overridden": "发送时段关闭至 {until}：已强制立即发送",
        "impact_intro": "粘贴修改后的规则文件（同名则替换该文件，新名称则新增），查看近期哪些结果会按新规则以不同方式发送。"
                        "不会保存或发送任何内容。",
        "rule_file": "规则文件", "days": "最近 N 天的结果", "proposed_rules": "修改后的规则文件",
        "server_path": "或服务器上的规则文件或目录（管理员）", "compare": "比较",
        "proposed_invalid": "修改后的规则无效：未进行比较。",
        "would_change": "最近 {days} 天收到的 {outcomes} 个结果中，有 {changed} 个会以不同方式处理",
        "impact_budget": "只比较了最早的 {budget} 个结果。", "field": "变化项",
        "moves": "规则之间的转移", "examples": "示例", "before": "当前", "after": "修改后",
        "field_rule": "规则", "field_template": "模板", "field_channels": "渠道顺序", "field_send_at": "发送时间",
        "send_test": "发送测试给我", "test_channel": "测试渠道",
        "test_sent": "测试消息已通过 {channel} 发送至 {to}（记录为测试，不计入报告）。",
        "test_failed": "发送至 {to} 的测试未成功：{error}",
        "no_test_address": "您的账号没有 {channel} 的地址：测试消息只发送到您账号中的邮箱（邮件渠道）。",
    },
}


def pick_language(accept: str | None) -> str:
    """zh-CN when the browser's Accept-Language prefers any Chinese over English; en otherwise (and by default)."""
    best, best_q = "en", -1.0
    for i, part in enumerate((accept or "")[:500].split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            k, _, v = p.strip().partition("=")
            if k == "q":
                try:
                    q = float(v)
                except ValueError:
                    q = 0.0
        lang = "zh-CN" if tag.lower().startswith("zh") else "en" if tag.lower().startswith("en") else None
        if lang and q - i * 1e-6 > best_q:  # equal weights: the first listed wins
            best, best_q = lang, q - i * 1e-6
    return best


def translator(lang: str) -> Callable[..., str]:
    """t(key, **fields): the text in `lang` (English when a key has no translation)."""
    table, fallback = TEXT.get(lang, TEXT["en"]), TEXT["en"]

    def t(key: str, **fields: object) -> str:
        text = table.get(key) or fallback.get(key, key)
        return text.format(**fields) if fields else text

    return t
