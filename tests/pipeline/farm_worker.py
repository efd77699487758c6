"""A farm task in its own process, for the concurrency tests.

    python farm_worker.py cli ARGS...          the CLI with the test engines registered
                                               (test-parked makes its first frame, says
                                               "inside the engine" on stderr, then waits for a
                                               line on stdin: the test kills it there)
    python farm_worker.py commit FOLDER N TAG  N read-modify-write registrations of empty takes
    python farm_worker.py hold FOLDER          take the write lock, say so, and wait for stdin to
                                               close (the test kills it or lets it go)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pipeline_factories import BlendEngine  # noqa: E402

from tooncrafter_studio.cli.main import run_cli  # noqa: E402
from tooncrafter_studio.engines.registry import register_engine  # noqa: E402
from tooncrafter_studio.pipeline.jobs import Job, KeyRef  # noqa: E402
from tooncrafter_studio.pipeline.runner import JobResult  # noqa: E402
from tooncrafter_studio.pipeline.shared_project import commit_take  # noqa: E402
from tooncrafter_studio.project.document import Take  # noqa: E402
from tooncrafter_studio.project.locking import project_write_lock  # noqa: E402


def park_after_first_frame(index: int) -> None:
    if index == 1:
        print("inside the engine", file=sys.stderr, flush=True)
        sys.stdin.readline()


def main(argv: list[str]) -> int:
    mode, rest = argv[0], argv[1:]
    if mode == "cli":
        register_engine("test-blend", BlendEngine)
        register_engine("test-parked", lambda: BlendEngine(before_frame=park_after_first_frame))
        return run_cli(rest)
    if mode == "commit":
        folder, count, tag = Path(rest[0]), int(rest[1]), rest[2]
        for i in range(count):
            take = Take(f"{tag}{i:03d}", "d0001", "d0009", [], {"engine": "none"}, {}, 0, "2026-01-01T00:00:00")
            job = Job("none", [0.5], KeyRef(), KeyRef(), folder=folder, segment=("d0001", "d0009"))
            commit_take(JobResult(job, [], 0, {}, take=take))
        return 0
    if mode == "hold":
        with project_write_lock(rest[0]):
            print("locked", flush=True)
            sys.stdin.read()
        return 0
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
