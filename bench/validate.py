"""Benchmark: `herald validate` on generated deployments of 100, 1,000 and 10,000 rules.

    python bench/validate.py            # full run (about a minute or two)
    python bench/validate.py --quick    # smaller and fewer repeats: a smoke test

Each deployment has its rules spread over 10 files and ~100 templates (zh-CN + fallback files,
every channel block), realistic rule shapes (see bench/_gen.py). Before anything is timed the
script checks that every generated deployment validates CLEAN: no error and no warning, in process
and through the real CLI. It then times, best of N:

- in process: engine.config.deployment.load_deployment(parallel=True), the path `herald validate` takes
  (templates render-checked in a forked worker while the rules load), after one warm-up load (imports, grammar and
  holiday tables are one-time costs); the `when` parse cache is cleared before each timed load;
- as a subprocess of the real CLI: `herald validate DIR` (a fresh interpreter every time), beside
  two baselines measured in the same run: `herald --help` (interpreter + click start-up) and
  `herald validate` of a 1-rule, 1-template deployment (start-up + imports + one-time set-up).

It prints a Markdown table (seconds, seconds per 1,000 rules, growth between sizes, marginal cost
per 1,000 rules) and "target met" / "TARGET MISSED" for: 10,000 rules validate in under 2 s.
When the target is missed it prints a cProfile of the in-process 10,000-rule load (engine code).
It exits non-zero only when something crashes or a generated deployment is not clean.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _gen

ROOT = Path(__file__).resolve().parent.parent

TARGET_RULES = 10_000
TARGET_SECONDS = 2.0


def herald_cmd() -> list[str]:
    """The installed console script next to this interpreter, else `python cli.py`."""
    exe = Path(sys.executable).with_name("herald")
    return [str(exe)] if exe.exists() else [sys.executable, str(ROOT / "cli.py")]


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def run_cli(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(herald_cmd() + args, cwd=cwd, capture_output=True, text=True)


def clear_caches() -> None:
    """Per-process caches that would make a second in-process load cheaper than a real first one."""
    try:
        from engine.rules import when
        when._parse_cached.cache_clear()
    except (ImportError, AttributeError):
        pass


def check_clean(directory: Path, expect_rules: int) -> None:
    """The generated deployment must validate with no diagnostic at all, in process and via the CLI."""
    from engine.config.deployment import load_deployment

    dep = load_deployment([str(directory)])
    if dep.diagnostics or dep.ruleset is None:
        shown = "\n  ".join(d.format() for d in dep.diagnostics[:20])
        raise SystemExit(f"generated deployment {directory} is not clean "
                         f"({len(dep.diagnostics)} diagnostics):\n  {shown}")
    if len(dep.ruleset.rules) != expect_rules:
        raise SystemExit(f"{directory}: expected {expect_rules} active rules, loaded {len(dep.ruleset.rules)}")
    proc = run_cli(["validate", str(directory)])
    if proc.returncode != 0 or proc.stdout.strip() or "ok:" not in proc.stderr:
        raise SystemExit(f"herald validate {directory}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


def write_minimal(directory: Path) -> None:
    """One rule and one template (two files): the CLI start-up baseline."""
    specs = [_gen.TemplateSpec("common/ack00", _gen.DECISIONS, html=False)]
    _gen.write_templates(directory / "templates", specs)
    rules = [{"id": "all", "match": {"decision": ["pass", "reject", "offer", "hold"]}, "template": "common/ack00"}]
    _gen.write_rules(directory / "rules", rules, files=1)


def profile_load(directory: Path, top: int = 18) -> str:
    from engine.config.deployment import load_deployment

    clear_caches()
    prof = cProfile.Profile()
    prof.enable()
    load_deployment([str(directory)])
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out)
    stats.sort_stats("cumulative").print_stats(r"/engine/", top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def fmt_table(rows: list[dict]) -> str:
    head = ("| rules | files | templates | in-process s | s / 1k rules | growth × (rules ×10) | "
            "marginal s / 1k rules | CLI s | CLI − start-up s | CLI s / 1k rules |")
    sep = "|" + "|".join("---:" for _ in range(head.count("|") - 1)) + "|"
    lines = [head, sep]
    prev = None
    for r in rows:
        growth = f"{r['inproc'] / prev['inproc']:.2f}" if prev else "–"
        marginal = (f"{(r['inproc'] - prev['inproc']) / (r['rules'] - prev['rules']) * 1000:.3f}"
                    if prev else "–")
        lines.append(f"| {r['rules']:,} | {r['files']} | {r['templates']} | {r['inproc']:.3f} | "
                     f"{r['inproc'] / r['rules'] * 1000:.3f} | {growth} | {marginal} | {r['cli']:.3f} | "
                     f"{r['cli'] - r['startup']:.3f} | {r['cli'] / r['rules'] * 1000:.3f} |")
        prev = r
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="100 and 1,000 rules, 2 repeats (smoke test)")
    ap.add_argument("--sizes", default=None, help="comma-separated rule counts (default 100,1000,10000)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per measurement (best is kept)")
    ap.add_argument("--templates", type=int, default=100, help="template names per deployment (2 files each)")
    ap.add_argument("--profile", action="store_true", help="print the profile of the largest load even if on target")
    ap.add_argument("--keep", metavar="DIR", help="generate into DIR and keep it (default: a temporary directory)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else ([100, 1000] if args.quick else [100, 1000, 10_000])
    repeats = args.repeats or (2 if args.quick else 3)

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="herald-bench-validate-"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        print(f"# herald validate benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cpus, "
              f"load average {os.getloadavg()[0]:.2f}; best of {repeats})\n")
        t = time.perf_counter()
        dirs = {}
        info = {}
        for n in sizes:
            d = base / f"rules-{n}"
            if d.exists():
                shutil.rmtree(d)
            info[n] = _gen.write_deployment(d, n, n_templates=args.templates)
            dirs[n] = d
        minimal = base / "minimal"
        if minimal.exists():
            shutil.rmtree(minimal)
        write_minimal(minimal)
        print(f"generated {len(sizes)} deployments in {time.perf_counter() - t:.1f} s under {base}")

        from engine.config.deployment import load_deployment

        load_deployment([str(minimal)])  # warm-up: imports, lark grammar, holidays, schemas
        t = time.perf_counter()
        for n in sizes:
            check_clean(dirs[n], info[n]["rules"])
        check_clean(minimal, 1)
        print(f"every generated deployment validates clean (exit 0, no errors, no warnings) "
              f"[checked in {time.perf_counter() - t:.1f} s]\n")

        help_s = best_of(lambda: run_cli(["--help"]), repeats + 2)
        startup = best_of(lambda: run_cli(["validate", str(minimal)]), repeats + 1)
        rows = []
        for n in sizes:
            def inproc(d=dirs[n]):
                clear_caches()
                dep = load_deployment([str(d)], parallel=True)  # as `herald validate` runs it
                assert dep.ok
            t_in = best_of(inproc, repeats)
            t_cli = best_of(lambda d=dirs[n]: run_cli(["validate", str(d)]), repeats)
            rows.append({"rules": info[n]["rules"], "files": info[n]["files"], "templates": info[n]["template_files"],
                         "inproc": t_in, "cli": t_cli, "startup": startup, "when": info[n]["with_when"]})
            print(f"  {n:>6,} rules: in-process {t_in:.3f} s, CLI {t_cli:.3f} s", flush=True)

        print()
        print(f"Baselines (same run): `herald --help` {help_s:.3f} s; "
              f"`herald validate` of 1 rule + 1 template {startup:.3f} s (start-up, imports, one-time set-up).")
        print(f"Templates: {args.templates} names x (zh-CN + fallback) = {rows[0]['templates']} files in every "
              f"deployment (a fixed cost). About 20% of rules have a `when`.\n")
        print(fmt_table(rows))
        print()
        if len(rows) >= 3:
            a, b, c = rows[-3], rows[-2], rows[-1]
            m1 = (b["inproc"] - a["inproc"]) / (b["rules"] - a["rules"])
            m2 = (c["inproc"] - b["inproc"]) / (c["rules"] - b["rules"])
            print(f"linearity: marginal cost per rule {b['rules']:,}->{c['rules']:,} / {a['rules']:,}->{b['rules']:,} "
                  f"= {m2 / m1:.2f} (1.0 = linear; well above 1 = superlinear)")
        big = next((r for r in rows if r["rules"] == TARGET_RULES), None)
        missed = False
        if big is None:
            print(f"target ({TARGET_RULES:,} rules < {TARGET_SECONDS} s): not measured in this run")
        else:
            for label, secs in (("in-process", big["inproc"]), ("CLI (subprocess, incl. start-up)", big["cli"])):
                ok = secs < TARGET_SECONDS
                missed |= not ok
                print(f"{'target met' if ok else 'TARGET MISSED'}: {TARGET_RULES:,} rules validate in "
                      f"{secs:.3f} s {label} (target < {TARGET_SECONDS} s)")
        if (missed or args.profile) and sizes:
            print(f"\n## profile: in-process load_deployment of {sizes[-1]:,} rules\n")
            print(profile_load(dirs[sizes[-1]]))
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
