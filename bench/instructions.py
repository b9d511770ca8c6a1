"""Instructions the calling thread spends per log call, counted by callgrind: the floor,
format-only, LogwellHandler (both protocols) and the peers, per record shape, on each
CPython asked for.

    .venv/bin/python bench/instructions.py [--python 3.11 3.13] [--out results.json]
    bash scripts/sid-root.sh python3.15 bench/instructions.py --python 3.14 3.15

Wall clock on a shared 2-vCPU machine cannot tell apart differences under about 25 %;
instruction counts repeat to about 0.2 % whatever else the machine does. Each contender
runs twice under ``valgrind --tool=callgrind`` (bench/contender.py, mode ``calls``), with
``FEW`` and then ``MANY`` records after the same set-up and warm-up: the difference in the
main thread's instructions, divided by ``MANY - FEW``, is the cost of one call, with
start-up, imports and warm-up cancelled out. The sink (bench/sink.py) receives what the
shippers send, so every contender runs as it would in production.

valgrind is installed by scripts/install-valgrind.sh when it is missing. For a Python
other than the one running this script, a venv with this project and the peers is made
in a temporary directory (a build of the extension each). This is a benchmark, not a
test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

import contender
from contender import SHAPES
from run import BASELINE, start_sink

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The contenders that go through `logging` (the clients do not: they have no record).
KINDS = [k for k in contender.KINDS if not k.endswith("-client")]
# The peer each contender needs, to skip it where it cannot be installed.
NEEDS = {"official-sdk-handler": "logwell", "opentelemetry": "opentelemetry.sdk"}
FEW, MANY = 500, 2_000
RUNNING = f"{sys.version_info[0]}.{sys.version_info[1]}"

# {python version: {contender: {shape: instructions per call}}}
Results = dict[str, dict[str, dict[str, Optional[float]]]]


def ensure_valgrind() -> None:
    if shutil.which("valgrind") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "install-valgrind.sh")], check=True)


def interpreter(version: str, scratch: Path) -> Path:
    """A Python of ``version`` with this project and the peers installed: this one when it
    has them (inside scripts/sid-root.sh, a bare python3.15 may run this script)."""
    if version == RUNNING and can_import(Path(sys.executable), "logwell_handler"):
        return Path(sys.executable)
    base = None
    if shutil.which("pyenv"):
        found = subprocess.run(
            ["pyenv", "prefix", version], capture_output=True, text=True, check=False
        )
        if found.returncode == 0:
            base = Path(found.stdout.strip()) / "bin" / "python3"
    base = base or Path(shutil.which(f"python{version}") or "")
    if not base.name:
        raise SystemExit(f"Python {version} is missing: pyenv install {version}")
    venv = scratch / f"venv{version}"
    subprocess.run([str(base), "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    print(f"installing the project and the peers for Python {version}", file=sys.stderr)
    # Dependency groups need pip 25.1 or later; a new venv has the one its Python came with.
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"], check=True)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            str(ROOT),
            "--group",
            f"{ROOT / 'pyproject.toml'}:bench",
        ],
        check=True,
        env={**os.environ, "CARGO_TARGET_DIR": str(scratch / "target")},
    )
    return python


def can_import(python: Path, module: str) -> bool:
    found = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, check=False
    )
    return found.returncode == 0


def main_thread_instructions(python: Path, kind: str, shape: str, records: int, sink: str) -> int:
    with tempfile.TemporaryDirectory() as out:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={out}/callgrind.out",
            str(python),
            str(HERE / "contender.py"),
            kind,
            str(records),
            "1",
            "calls",
            sink,
            shape,
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{kind} ({shape}) failed:\n{done.stderr[-3000:]}")
        # Thread 1 is the main thread: the one that logs.
        for line in (Path(out) / "callgrind.out-01").read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise SystemExit(f"{kind} ({shape}): callgrind wrote no totals")


def per_call(python: Path, kind: str, shape: str, sink: str) -> float:
    few = main_thread_instructions(python, kind, shape, FEW, sink)
    many = main_thread_instructions(python, kind, shape, MANY, sink)
    count = (many - few) / (MANY - FEW)
    print(f"{kind}, {shape}: {count:,.0f}", file=sys.stderr, flush=True)
    return count


def measure(
    python: Path, kinds: list[str], shapes: list[str], sink: str
) -> dict[str, dict[str, Optional[float]]]:
    runnable = [k for k in kinds if k not in NEEDS or can_import(python, NEEDS[k])]
    jobs = [(kind, shape) for kind in runnable for shape in shapes]
    # Two at a time: instruction counts do not depend on what else runs.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = pool.map(lambda job: per_call(python, job[0], job[1], sink), jobs)
        found = dict(zip(jobs, counts))
    return {kind: {shape: found.get((kind, shape)) for shape in shapes} for kind in kinds}


def table(results: dict[str, dict[str, Optional[float]]], shapes: list[str]) -> str:
    lines = [
        "| contender | " + " | ".join(f"{s} | × fmt" for s in shapes) + " |",
        "| --- | " + " | ".join("---: | ---:" for _ in shapes) + " |",
    ]
    for kind, row in results.items():
        cells = []
        for shape in shapes:
            value, base = row[shape], results[BASELINE][shape]
            if value is None or base is None:
                cells.append("n/a | n/a")
            else:
                cells.append(f"{value:,.0f} | {value / base:.2f}".replace(",", " "))
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", nargs="*", default=[RUNNING])
    parser.add_argument(
        "--contenders", nargs="*", default=KINDS, choices=KINDS + list(contender.STORM_GUARD)
    )
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--out", type=Path, help="save the figures here as JSON")
    args = parser.parse_args(argv)
    every = KINDS + list(contender.STORM_GUARD)
    kinds = [k for k in every if k in args.contenders or k == BASELINE]
    ensure_valgrind()
    results: Results = {}
    sink, sink_url = start_sink()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for version in args.python:
                python = interpreter(version, Path(scratch))
                full = subprocess.run(
                    [str(python), "-c", "import platform; print(platform.python_version())"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
                print(f"counting on Python {full}", file=sys.stderr, flush=True)
                results[full] = measure(python, kinds, args.shapes, sink_url)
    finally:
        sink.kill()
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs; per call: ({MANY} - {FEW} calls)"
    print(f"Instructions per log call on the calling thread (callgrind), {machine}")
    for version, rows in results.items():
        print(f"\nCPython {version}\n")
        print(table(rows, args.shapes))
    if args.out:
        args.out.write_text(
            json.dumps({"machine": machine, "shapes": args.shapes, "instructions": results})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
