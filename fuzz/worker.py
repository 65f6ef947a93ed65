"""One fuzz target in a process of its own (`python -m fuzz.worker TARGET ENGINE SECONDS`), its
address space capped; prints `inputs: N` and, after a crash, `crash: PATH` (the input, minimised
by hypothesis or as libFuzzer wrote it). `replay` runs the files named after the target instead."""

from __future__ import annotations

import hashlib
import sys
import time
import traceback
from pathlib import Path

from fuzz.limits import MEMORY_MB, SECONDS_PER_INPUT, InputTimeout, bounded_time, cap_memory

WORK = Path(".fuzz")


def _save(folder: Path, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"crash-{hashlib.sha1(data).hexdigest()}"  # noqa: S324 - a name, as libFuzzer's
    path.write_bytes(data)
    return path


def _seed_corpus(name: str, seeds: list[bytes]) -> Path:
    corpus = WORK / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path = corpus / f"seed-{hashlib.sha1(seed).hexdigest()}"  # noqa: S324
        if not path.exists():
            path.write_bytes(seed)
    return corpus


def with_atheris(name: str, seconds: int) -> int:
    import atheris

    with atheris.instrument_imports(include=["pecflow", "jinja2", "jsonschema", "pydantic"]):
        from fuzz.targets import MAX_INPUT, TARGETS
    target = TARGETS[name]
    corpus = _seed_corpus(name, target.seeds())
    crashes = WORK / "crashes" / name
    crashes.mkdir(parents=True, exist_ok=True)
    argv = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-timeout={int(SECONDS_PER_INPUT)}",
        f"-rss_limit_mb={MEMORY_MB}",
        f"-malloc_limit_mb={MEMORY_MB}",
        f"-max_len={MAX_INPUT}",
        f"-artifact_prefix={crashes}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    atheris.Setup(argv, target.run)
    atheris.Fuzz()  # exits the process: libFuzzer prints stat::number_of_executed_units
    return 0


def with_hypothesis(name: str, seconds: int) -> int:
    from hypothesis import HealthCheck, Phase, given, settings

    from fuzz.strategies import inputs
    from fuzz.targets import TARGETS

    target = TARGETS[name]
    strategy = inputs(target.seeds())
    ran, failing = 0, [b""]

    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=[Phase.generate, Phase.shrink])  # fmt: skip
    @given(strategy)
    def one(data: bytes) -> None:
        nonlocal ran
        ran += 1
        try:
            with bounded_time(SECONDS_PER_INPUT):
                target.run(data)
        except InputTimeout as exc:
            failing[0] = data
            raise AssertionError(str(exc)) from None
        except BaseException:
            failing[0] = data
            raise

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            one()
        except BaseException:  # noqa: BLE001 - the crash, reported with its (shrunk) input
            traceback.print_exc()
            print(f"inputs: {ran}")
            print(f"crash: {_save(WORK / 'crashes' / name, failing[0])}")
            return 1
    print(f"inputs: {ran}")
    return 0


def replay(name: str, files: list[str]) -> int:
    from fuzz.targets import TARGETS

    target, crashed = TARGETS[name], 0
    for file in files:
        data = Path(file).read_bytes()
        try:
            with bounded_time(SECONDS_PER_INPUT):
                target.run(data)
        except BaseException:  # noqa: BLE001
            traceback.print_exc()
            print(f"crash: {file}")
            crashed += 1
    print(f"inputs: {len(files)}")
    return 1 if crashed else 0


def main(argv: list[str]) -> int:
    name, engine, rest = argv[0], argv[1], argv[2:]
    cap_memory(MEMORY_MB)
    if engine == "replay":
        return replay(name, rest)
    if engine == "atheris":
        return with_atheris(name, int(rest[0]))
    return with_hypothesis(name, int(rest[0]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
