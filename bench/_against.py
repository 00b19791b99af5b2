"""End to end against another commit, in the same run: the comparison issues 10 and 13 ask for ("may not cost
more than 5% against the figure measured in the same run on the commit before").

The other commit's tree is exported with `git archive` into a temporary directory. Each tree runs in a
process of its own (`python bench/_against.py --child TREE RULES OUTCOMES`), which imports herald from that
tree, loads the same deployment, routes the same outcomes once to warm up, then waits: each `run` line on
its standard input makes it run the whole file once through Pipeline.run_lines + plan_line (as
bench/dryrun.py's end-to-end figure does) and answer the CPU seconds that took in that process. The parent
alternates the trees round by round, so load from other work on the machine falls on both alike, and keeps
the best round of each.
"""
from __future__ import annotations

import contextlib
import gc
import io
import json
import subprocess
import sys
import tarfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def export(rev: str, dest: Path) -> Path:
    """The tree of `rev` (a commit of this repository) written under `dest`; CalledProcessError when git
    does not know it (a shallow clone, say)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                             capture_output=True, check=True).stdout
    tree = dest / f"tree-{rev}"
    tree.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


class Child:
    """One tree's process: started, loaded and warmed in __init__, then one timed run per call."""

    def __init__(self, tree: Path, rules: Path, outcomes: Path, now: datetime) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", str(tree),
                                      str(rules), str(outcomes), now.isoformat()], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=str(rules))
        self.ready = json.loads(self._line())  # {"engine": path, "statuses": {...}}

    def _line(self) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the child for {self.proc.args[3]} ended (exit {self.proc.wait()})")
        return line

    def _ask(self, command: str) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line()

    def run(self, guarded: bool = True) -> float:
        """CPU seconds of one run of the whole file (`guarded`: the render budget on, as herald runs)."""
        return self.run_both(guarded)[0]

    def run_both(self, guarded: bool = True) -> tuple[float, float]:
        """(CPU seconds, wall seconds) of one run of the whole file."""
        cpu, wall = self._ask("run" if guarded else "run unguarded").split()
        return float(cpu), float(wall)

    def output(self, path: Path) -> None:
        """One run, its jsonl output written to `path`."""
        if self._ask(f"out {path}").strip() != "ok":
            raise RuntimeError(f"the child for {self.proc.args[3]} did not write {path}")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        self.proc.wait(timeout=60)


def compare(trees: dict[str, Path], rules: Path, outcomes: Path, rounds: int, now: datetime) -> dict[str, dict]:
    """{label: {"best": CPU seconds of the best round, "rounds": [...], "statuses": {...}, "engine": path}}
    for each tree, the trees' rounds alternated (`rules`: a deployment directory; `outcomes`: JSON lines;
    `now`: the dry-run's fixed clock)."""
    children = {label: Child(tree, rules, outcomes, now) for label, tree in trees.items()}
    try:
        times: dict[str, list[float]] = {label: [] for label in trees}
        for _ in range(rounds):
            for label, child in children.items():
                times[label].append(child.run())
        return {label: {"best": min(times[label]), "rounds": times[label], **children[label].ready}
                for label in trees}
    finally:
        for child in children.values():
            child.close()


def child(tree: str, rules: str, outcomes: str, now_text: str) -> None:
    """The child's side (started in `rules`): herald imported from `tree`, answering `run` lines until its
    input ends."""
    sys.path.insert(0, tree)
    try:
        from engine.config.deployment import load_deployment
    except ImportError:  # the layout before issue 13 (engine/deployment.py)
        from engine.deployment import load_deployment  # type: ignore[no-redef]
    import engine
    from engine.pipeline import Pipeline, plan_line

    if not str(Path(engine.__file__).resolve()).startswith(str(Path(tree).resolve())):
        raise SystemExit(f"imported herald from {engine.__file__}, not from {tree}")
    lines = Path(outcomes).read_text(encoding="utf-8").split("\n")
    dep = load_deployment([rules])  # (the working directory is `rules`: template paths read as the CLI's)
    now = datetime.fromisoformat(now_text)

    def run(buf: io.StringIO) -> Counter:
        pipe = Pipeline(dep, now=now, render_channels="first")
        statuses: Counter = Counter()
        for plan in pipe.run_lines(lines):
            statuses[plan.status] += 1
            buf.write(plan_line(plan) + "\n")
        return statuses

    statuses = run(io.StringIO())  # warm: templates compiled, caches filled
    budgeted = hasattr(dep.templates, "limits")  # (a tree before the render budget has none: always unguarded)
    limits = dep.templates.limits if budgeted else None
    gc.collect()
    gc.freeze()  # the outcome lines and the deployment, out of the collector's way (as bench/dryrun.py does)
    print(json.dumps({"engine": str(Path(engine.__file__).parent), "statuses": dict(statuses)}), flush=True)
    for command in sys.stdin:
        verb, _, arg = command.strip().partition(" ")
        if verb == "out":
            buf = io.StringIO()
            run(buf)
            Path(arg).write_text(buf.getvalue(), encoding="utf-8")
            print("ok", flush=True)
        elif verb == "run":
            if budgeted:
                dep.templates.limits = None if arg == "unguarded" else limits
            gc.collect()
            t, w = time.process_time(), time.perf_counter()
            run(io.StringIO())
            print(time.process_time() - t, time.perf_counter() - w, flush=True)
            if budgeted:
                dep.templates.limits = limits


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--child":
    child(*sys.argv[2:6])
