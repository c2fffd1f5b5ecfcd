"""One worker process: runs a group of cells and stores a record for each.

The orchestrator (:mod:`benchmarks.run`) starts one worker per group so that tools never share
a process: each gets its own fresh Ray, environment and imports. Usage (internal)::

    python -m benchmarks.worker SPEC.json
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks._common import Settings, write_record
from benchmarks._peers import PeerMissing

#: prefix of the lines the orchestrator echoes to the console
PROGRESS_PREFIX = "@@bench "


def _suite(name: str) -> Any:
    """The suite's module (``benchmarks.<name>``): each has ``run_cell`` and ``summary``."""
    import importlib

    return importlib.import_module(f"benchmarks.{name}")


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    settings = Settings.from_json(spec["settings"])
    settings.scratch_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for cell in spec["cells"]:
        suite = _suite(cell["suite"])
        started = time.perf_counter()
        # Ray storage and the like: thrown away after each cell (the MLflow store is shared and kept).
        scratch = Path(tempfile.mkdtemp(prefix=f"{cell['id']}-", dir=settings.scratch_dir))
        try:
            record = suite.run_cell(cell, settings, scratch)
            line = suite.summary(record)
        except PeerMissing as exc:
            record = {**cell, "skipped": str(exc)}
            line = f"{cell['id']}: skipped ({exc})"
        except Exception as exc:  # one broken cell must not lose the others
            failures += 1
            detail = traceback.format_exc()
            print(detail, file=sys.stderr, flush=True)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            record = {**cell, "error": f"{type(exc).__name__}: {reason}"}
            line = f"{cell['id']}: FAILED ({record['error']})"
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        record["cell_wall_s"] = time.perf_counter() - started
        write_record(settings, cell["suite"], record)
        print(PROGRESS_PREFIX + f"{line}  [{record['cell_wall_s']:.0f}s]", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
