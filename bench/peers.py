"""Benchmark: herald's router beside rule engines, on the workload rule engines are usually measured with.

    python bench/peers.py            # 10, 100, 1,000, 10,000 rules; 100,000 outcomes (~4 min)
    python bench/peers.py --quick    # 10 and 1,000 rules; 20,000 outcomes (smoke test)

The workload (seeded): N rules, each matching role, stage, decision and reason exactly (drawn uniformly
from the vocabularies of bench/_gen.py: 40 roles, 6 stages, 4 decisions, 20 reasons) plus
`when: score >= lo and score < hi` (integers, lo in 0..90, hi - lo in 1..30), then one catch-all; first
match wins. Outcomes: half aimed at a random rule (its four values and a score inside its range), half
uniform (every field drawn at random, score in 0..100); scores have one decimal.

Engines, each in its own process (so that its memory is its own), all in one run:
- herald: Router.route over Rule objects whose `when` herald compiled (the loader's path);
- a specialised index: a dict on the four fields, then each rule's range in order (the limit for this
  workload in Python: it knows the rules' shape);
- zen-engine (GoRules, Rust core): one decision table, hit policy first, evaluated per outcome;
- durable-rules: one ruleset, a rule per row with `pri` giving the order, each outcome posted as an event;
- a naive loop: every rule in order, match fields then `when` (timed on a sample: it is slow).

Every engine is first checked against the naive loop on 1,000 outcomes. Printed per engine and rule
count: outcomes per CPU second (the process's CPU time, not wall time: this benchmark runs on shared
machines; best of N interleaved passes over all outcomes, dicts already parsed), its ratio to herald's,
build time (from the rules' text: herald includes compiling each `when`), and memory: the growth of the
process's resident set over build and routing, and for herald the Python heap the router keeps
(tracemalloc, the rules themselves excluded). herald's targets (issue 18): at 10,000 rules >= 1,200,000
outcomes/s with no decision cache to help, >= 0.5 of its speed at 10 rules, router <= 50 MB.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any
from collections.abc import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _gen  # noqa: E402

FIELDS = ("role", "stage", "decision", "reason")
VOCAB = {"role": _gen.ROLES, "stage": _gen.STAGES, "decision": _gen.DECISIONS, "reason": _gen.REASONS}
CHECKED = 1_000
TARGET_RATE = 1_200_000
TARGET_FLATNESS = 0.5
TARGET_MB = 50
ENGINES = ("herald", "index", "zen", "durable", "naive")
LABELS = {"herald": "herald `Router.route`", "index": "specialised dict index (the limit)",
          "zen": "zen-engine (decision table, hit policy first)", "durable": "durable-rules (pri order)",
          "naive": "naive first-match loop"}

Spec = tuple  # (role, stage, decision, reason, lo, hi)


# ------------------------------------------------------------------------------------------ workload

def make_rules(n: int, seed: int = 18) -> list[Spec]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        lo = rng.randint(0, 90)
        out.append((*(rng.choice(VOCAB[f]) for f in FIELDS), lo, lo + rng.randint(1, 30)))
    return out


def make_outcomes(rules: list[Spec], n: int, seed: int = 19) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if i % 2 == 0:
            role, stage, decision, reason, lo, hi = rng.choice(rules)
            score = min(round(rng.uniform(lo, hi), 1), hi - 0.1)
        else:
            role, stage, decision, reason = (rng.choice(VOCAB[f]) for f in FIELDS)
            score = round(rng.uniform(0, 100), 1)
        out.append({"id": f"o{i}", "role": role, "stage": stage, "decision": decision, "reason": reason,
                    "score": score, "candidate": {"name": "x", "email": "x@example.com"}})
    return out


# ------------------------------------------------------------------------------------------ engines
# Each build(rules) returns route(outcome) -> the winning rule's position (len(rules): the catch-all).

def build_herald(rules: list[Spec]) -> Callable:
    from datetime import timedelta

    from engine.model import Rule, RuleSet, Timing
    from engine.routing.router import Router
    from engine.rules.when import parse_when

    timing = Timing(timedelta(0))
    made = []
    for i, (role, stage, decision, reason, lo, hi) in enumerate(rules):
        when = f"score >= {lo} and score < {hi}"
        expr, errors = parse_when(when)
        assert expr is not None, errors
        match = (("role", (role,)), ("stage", (stage,)), ("decision", (decision,)), ("reason", (reason,)))
        made.append(Rule(id=f"r{i}", template="t", channels=("email",), timing=timing, match=match,
                         when=when, predicate=expr.predicate, order=i))
    made.append(Rule(id="catch-all", template="t", channels=("email",), timing=timing, order=len(rules)))
    router = Router(RuleSet(tuple(made), {}, "peers"))
    route = router.route
    build_herald.router = router  # type: ignore[attr-defined]  # for the memory figure

    def run(o: dict) -> int:
        return route(o).order  # type: ignore[union-attr]  # the catch-all always matches
    run.raw = route  # type: ignore[attr-defined]  # timed directly: the rule object is the answer
    return run


def build_index(rules: list[Spec]) -> Callable:
    index: dict = {}
    for i, (role, stage, decision, reason, lo, hi) in enumerate(rules):
        index.setdefault((role, stage, decision, reason), []).append((lo, hi, i))
    catch_all = len(rules)

    def route(o: dict) -> int:
        for lo, hi, i in index.get((o.get("role"), o.get("stage"), o.get("decision"), o.get("reason")), ()):
            s = o.get("score")
            if s.__class__ in (int, float) and lo <= s < hi:
                return i
        return catch_all
    return route


def build_zen(rules: list[Spec]) -> Callable:
    import zen

    def node(i: str, kind: str, **kw: Any) -> dict:
        return {"id": i, "type": kind, "name": i, "position": {"x": 0, "y": 0}, **kw}
    inputs = [{"id": f, "name": f, "field": f} for f in (*FIELDS, "score")]
    rows = [{"_id": f"r{i}", **{f: json.dumps(v) for f, v in zip(FIELDS, spec[:4], strict=True)},
             "score": f">= {spec[4]} and < {spec[5]}", "out": str(i)} for i, spec in enumerate(rules)]
    rows.append({"_id": "catch-all", **dict.fromkeys((*FIELDS, "score"), ""), "out": str(len(rules))})
    table = {"hitPolicy": "first", "inputs": inputs, "outputs": [{"id": "out", "name": "rule", "field": "rule"}],
             "rules": rows}
    graph = {"nodes": [node("in", "inputNode"), node("table", "decisionTableNode", content=table),
                       node("out", "outputNode")],
             "edges": [{"id": "e1", "sourceId": "in", "targetId": "table", "type": "edge"},
                       {"id": "e2", "sourceId": "table", "targetId": "out", "type": "edge"}]}
    decision = zen.ZenEngine().create_decision(zen.ZenDecisionContent(json.dumps(graph)))  # parsed once
    evaluate = decision.evaluate

    def route(o: dict) -> int:
        return evaluate(o)["result"]["rule"]
    return route


def build_durable(rules: list[Spec]) -> Callable:
    from durable.lang import get_host, m, pri, ruleset, when_all

    won: list = [None]

    def action(i: int) -> Callable:
        def fire(c: Any) -> None:
            won[0] = i
        fire.__name__ = f"r{i}"
        return fire
    with ruleset(f"peers{len(rules)}"):
        for i, (role, stage, decision, reason, lo, hi) in enumerate(rules):
            when_all(pri(i), (m.role == role) & (m.stage == stage) & (m.decision == decision)
                     & (m.reason == reason) & (m.score >= lo) & (m.score < hi))(action(i))
        when_all(pri(len(rules)), +m.role)(action(len(rules)))
    host = get_host()
    name = f"peers{len(rules)}"

    def route(o: dict) -> int:
        won[0] = None
        host.post(name, o)
        return won[0]
    return route


def build_naive(rules: list[Spec]) -> Callable:
    catch_all = len(rules)

    def route(o: dict) -> int:
        for i, (role, stage, decision, reason, lo, hi) in enumerate(rules):
            if (o.get("role") == role and o.get("stage") == stage and o.get("decision") == decision
                    and o.get("reason") == reason):
                s = o.get("score")
                if type(s) in (int, float) and lo <= s < hi:
                    return i
        return catch_all
    return route


BUILDERS = {"herald": build_herald, "index": build_index, "zen": build_zen, "durable": build_durable,
            "naive": build_naive}


# ------------------------------------------------------------------------------------------ one engine

def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def child(engine: str, n_rules: int, n_out: int) -> dict:
    """Build one engine at one rule count in a fresh process and route every outcome once: build time
    and the growth of the resident set (the rates are timed by the parent, engines side by side)."""
    rules = make_rules(n_rules)
    outcomes = make_outcomes(rules, n_out)
    gc.collect()
    gc.freeze()
    rss0 = rss_mb()
    t = time.perf_counter()
    route = BUILDERS[engine](rules)
    build = time.perf_counter() - t
    rss_build = rss_mb() - rss0
    for o in outcomes[:sample_size(route, outcomes, 2.0)]:
        route(o)
    out = {"build": build, "rss_build": rss_build, "rss_total": rss_mb() - rss0}
    if engine == "herald":
        out.update(herald_memory(rules, outcomes))
    return out


def sample_size(route: Callable, outcomes: list, seconds: float) -> int:
    """How many outcomes `route` gets through in about `seconds` (all of them for the fast engines)."""
    probe = outcomes[:500]
    best = float("inf")
    for _ in range(2):
        t = time.process_time()
        for o in probe:
            route(o)
        best = min(best, time.process_time() - t)
    rate = len(probe) / max(best, 1e-6)
    return max(1_000, min(len(outcomes), int(rate * seconds)))


def herald_memory(rules: list[Spec], outcomes: list[dict]) -> dict:
    """The Python heap the router keeps after routing every outcome (its rules not counted)."""
    router = build_herald.router  # type: ignore[attr-defined]
    ruleset = router.ruleset
    from engine.routing.router import Router

    del router, build_herald.router  # type: ignore[attr-defined]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fresh = Router(ruleset)
    for o in outcomes:
        fresh.route(o)
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return {"router_mb": kept / 1e6, "complete": fresh.complete}


# ------------------------------------------------------------------------------------------ report

def run_child(engine: str, n: int, n_out: int) -> dict:
    cmd = [sys.executable, __file__, "--child", engine, "--rules", str(n), "--outcomes", str(n_out)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(engines: list, n: int, n_out: int, repeats: int) -> dict:
    """Rates at one rule count: every engine built in this process, checked against the naive loop on
    the first outcomes, then timed in interleaved rounds (best round kept), so that load from other
    work on the machine falls on all of them alike."""
    rules = make_rules(n)
    outcomes = make_outcomes(rules, n_out)
    expected = [build_naive(rules)(o) for o in outcomes[:CHECKED]]
    gc.collect()
    gc.freeze()
    routes, out = {}, {}
    for engine in engines:
        try:
            route = BUILDERS[engine](rules)
        except ImportError as exc:
            out[engine] = {"unavailable": f"not installed ({exc})"}
            continue
        except Exception as exc:  # noqa: BLE001 - a peer that cannot take this rule set is reported, not fatal
            out[engine] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        wrong = sum(route(o) != e for o, e in zip(outcomes, expected, strict=False))  # the first CHECKED
        timed = outcomes[:sample_size(route, outcomes, 1.0)]
        routes[engine] = (getattr(route, "raw", route), timed)
        out[engine] = {"wrong": wrong, "checked": len(expected), "timed": len(timed), "best": float("inf")}
    for round_no in range(repeats):
        for engine, (fn, timed) in routes.items():
            if round_no >= 3 and len(timed) < len(outcomes):
                continue  # a slow engine timed on a sample: three rounds are enough for its figure
            t = time.process_time()
            for o in timed:
                fn(o)
            out[engine]["best"] = min(out[engine]["best"], time.process_time() - t)
    for engine in routes:
        out[engine]["rate"] = out[engine]["timed"] / out[engine]["best"]
    if "herald" in routes:
        out["herald"]["complete"] = build_herald.router.complete  # type: ignore[attr-defined]
    del routes
    gc.unfreeze()
    return out


def fmt_rate(r: float) -> str:
    return f"{r / 1e6:.2f}M" if r >= 1e6 else f"{r / 1e3:.0f}k" if r >= 1e4 else f"{r:,.0f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 and 1,000 rules, 20,000 outcomes")
    ap.add_argument("--sizes", help="rule counts, comma-separated (default 10,100,1000,10000)")
    ap.add_argument("--engines", default=",".join(ENGINES), help=f"default {','.join(ENGINES)}")
    ap.add_argument("--outcomes", type=int, help="default 100,000")
    ap.add_argument("--repeats", type=int, default=7, help="timed rounds (best kept; 3 for sampled engines)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--rules", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    n_out = args.outcomes or (20_000 if args.quick else 100_000)
    if args.child:
        print(json.dumps(child(args.child, args.rules, n_out)))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([10, 1000] if args.quick else [10, 100, 1000, 10_000])
    engines = [e for e in args.engines.split(",") if e]
    started = time.perf_counter()
    print(f"# herald routing beside rule engines  (python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
          f"load average {os.getloadavg()[0]:.2f}; {n_out:,} outcomes; best of {args.repeats})\n")
    versions = peer_versions()
    results: dict = {}
    for n in sizes:
        rates = measure(engines, n, n_out, args.repeats)
        for engine in engines:
            r = results[engine, n] = rates[engine]
            if "rate" in r:
                r.update(run_child(engine, n, n_out))
            shown = (r.get("unavailable") or r.get("error") or
                     f"{r['rate']:,.0f}/s (n={r['timed']:,}), build {r.get('build', float('nan')):.2f} s, "
                     f"{r['wrong']} wrong of {r['checked']:,}")
            print(f"  {n:>6,} rules, {engine}: {shown}", flush=True)
    print()
    print("| engine | " + " | ".join(f"{n:,} rules" for n in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for engine in engines:
        cells = []
        for n in sizes:
            r, h = results[engine, n], results.get(("herald", n), {})
            if "rate" not in r:
                cells.append("unavailable" if "unavailable" in r else "failed")
                continue
            ratio = f" ({r['rate'] / h['rate']:.2f}×)" if "rate" in h and engine != "herald" else ""
            sample = f" (n={r['timed']:,})" if r["timed"] < n_out else ""
            cells.append(f"{fmt_rate(r['rate'])}{ratio}{sample}")
        print(f"| {LABELS[engine]}{versions.get(engine, '')} | " + " | ".join(cells) + " |")
    print("\n(outcomes/s; in brackets the ratio to herald in the same run)\n")
    print("| engine | rules | build s | resident memory: build / build + routing MB | checked against naive |")
    print("|---|---:|---:|---:|---|")
    for engine in engines:
        for n in sizes:
            r = results[engine, n]
            if "rate" not in r:
                print(f"| {engine} | {n:,} | | | {r.get('unavailable') or r.get('error')} |")
                continue
            extra = f"; router heap {r['router_mb']:.1f} MB" if "router_mb" in r else ""
            if "error" in r:
                extra += f" (memory not measured: {r['error']})"
            nan = float("nan")
            print(f"| {engine} | {n:,} | {r.get('build', nan):.2f} | {r.get('rss_build', nan):.0f} / "
                  f"{r.get('rss_total', nan):.0f}{extra} | "
                  f"{'agrees' if r['wrong'] == 0 else 'DISAGREES'} on {r['checked']:,}: {r['wrong']} wrong |")
    for engine, why in {e: r["unavailable"] for (e, _), r in results.items() if "unavailable" in r}.items():
        print(f"\n{engine} is unavailable here: {why}")
    print("\n## targets\n")
    report_targets(results, sizes)
    print(f"\n(total {time.perf_counter() - started:.0f} s)")
    return 0


def peer_versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for engine, dist in (("zen", "zen-engine"), ("durable", "durable-rules")):
        try:
            out[engine] = f" {version(dist)}"
        except PackageNotFoundError:
            out[engine] = " (not installed)"
    return out


def report_targets(results: dict, sizes: list) -> None:
    big, small = results.get(("herald", 10_000), {}), results.get(("herald", 10), {})
    if "rate" not in big:
        print("herald targets: 10,000 rules not measured in this run")
        return
    mode = "complete index, no decision cache" if big.get("complete") else "decision cache cold at first"
    print(f"{'target met' if big['rate'] >= TARGET_RATE else 'TARGET MISSED'}: herald at 10,000 rules "
          f"{big['rate']:,.0f} outcomes/s ({mode}; target >= {TARGET_RATE:,})")
    if "rate" in small:
        ratio = big["rate"] / small["rate"]
        limit = results.get(("index", 10_000), {}), results.get(("index", 10), {})
        beside = (f"; the specialised dict index in the same run: {limit[0]['rate'] / limit[1]['rate']:.2f}"
                  if "rate" in limit[0] and "rate" in limit[1] else "")
        print(f"{'target met' if ratio >= TARGET_FLATNESS else 'TARGET MISSED'}: herald@10,000 / herald@10 = "
              f"{ratio:.2f} (target >= {TARGET_FLATNESS}{beside})")
    print(f"{'target met' if big['router_mb'] <= TARGET_MB else 'TARGET MISSED'}: herald's router at 10,000 rules "
          f"keeps {big['router_mb']:.1f} MB of Python heap after routing every outcome (target <= {TARGET_MB} MB)")
    bad = [f"{e}@{n}" for (e, n), r in results.items() if r.get("wrong")]
    print(("every engine agrees with the naive loop on " if not bad else "DISAGREEMENT with the naive loop: "
           + ", ".join(bad) + "; checked on ") + f"{CHECKED:,} outcomes")


if __name__ == "__main__":
    sys.exit(main())
