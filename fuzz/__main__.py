"""`python -m fuzz --seconds N [--target NAME ...]`: every target (fuzz/targets.py) for N seconds
each, one process per target with its address space capped and each input bounded in time
(fuzz/limits.py). Atheris (coverage-guided, libFuzzer) where it is installed, hypothesis
elsewhere; `--engine` chooses. A crash is saved under .fuzz/crashes/<target>/ and fails the run:
minimise it, add it to tests/fuzz_regressions/<target>/ and fix the code.

`python -m fuzz --replay [DIR]`: every file of DIR/<target>/ (tests/fuzz_regressions by default)
through its target under the same bounds."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

from fuzz.targets import TARGETS

REGRESSIONS = Path(__file__).resolve().parents[1] / "tests" / "fuzz_regressions"


def _engine(asked: str) -> str:
    if asked != "auto":
        return asked
    return "atheris" if importlib.util.find_spec("atheris") is not None else "hypothesis"


def _inputs(output: str) -> int:
    found = re.findall(r"(?:stat::number_of_executed_units|inputs):\s*(\d+)", output)
    return int(found[-1]) if found else 0


def _crash(output: str) -> str | None:
    found = re.findall(r"(?:crash: |Test unit written to )(\S+)", output)
    return found[-1] if found else None


def fuzz(names: list[str], seconds: int, engine: str) -> int:
    failed = 0
    for name in names:
        run = subprocess.run(
            [sys.executable, "-m", "fuzz.worker", name, engine, str(seconds)],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=seconds + 300,
            check=False,
        )
        output = run.stdout + run.stderr
        crash = _crash(output) if run.returncode else None
        if run.returncode:
            failed += 1
            print(output[-4000:], file=sys.stderr)
        verdict = f"CRASH (exit {run.returncode}): {crash or 'no input saved, see the output above'}"
        verdict = verdict if run.returncode else "no crash"
        print(f"{name}: {_inputs(output):,} inputs in {seconds} s ({engine}): {verdict}", flush=True)
    return 1 if failed else 0


def replay(folder: Path) -> int:
    failed = 0
    for name in sorted(TARGETS):
        files = sorted(str(p) for p in (folder / name).glob("*") if p.is_file())
        if not files:
            continue
        run = subprocess.run([sys.executable, "-m", "fuzz.worker", name, "replay", *files],
                             capture_output=True, text=True, errors="replace", timeout=600, check=False)  # fmt: skip
        if run.returncode:
            failed += 1
            print(run.stdout[-4000:] + run.stderr[-4000:], file=sys.stderr)
        print(f"{name}: {len(files)} regression input(s): {'CRASH' if run.returncode else 'ok'}", flush=True)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="only these (repeatable)")
    parser.add_argument("--engine", choices=("auto", "atheris", "hypothesis"), default="auto")
    parser.add_argument("--replay", nargs="?", const=str(REGRESSIONS), metavar="DIR",
                        help="run the regression inputs of DIR/<target>/ instead")  # fmt: skip
    parser.add_argument("--list", action="store_true", help="list the targets")
    args = parser.parse_args(argv)
    if args.list:
        for target in TARGETS.values():
            print(f"{target.name:20} {target.what}")
        return 0
    if args.replay:
        return replay(Path(args.replay))
    return fuzz(args.target or sorted(TARGETS), args.seconds, _engine(args.engine))


if __name__ == "__main__":
    sys.exit(main())
