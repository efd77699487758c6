"""Submit a ToonCrafter Studio batch to Deadline (written by `farm export --format deadline`).

This file is the same for every export; the job is job_info.job, plugin_info.job and commands.txt
beside it (the CommandScript plugin runs one line of commands.txt per task). With export_*.job and
export_commands.txt beside them (farm export --export-to), both jobs are submitted together, the
export job dependent on the first (deadlinecommand -SubmitMultipleJobs -dependent).

    python submit_deadline.py [--dry-run]

Calls `deadlinecommand` from PATH (or from the folder in $DEADLINE_PATH, as Deadline's installer sets).
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
FILES = ("job_info.job", "plugin_info.job", "commands.txt")
EXPORT_FILES = ("export_job_info.job", "export_plugin_info.job", "export_commands.txt")


def find_deadlinecommand():
    found = shutil.which("deadlinecommand")
    if found is None and os.environ.get("DEADLINE_PATH"):
        found = shutil.which("deadlinecommand", path=os.environ["DEADLINE_PATH"])
    return found


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the command, run nothing")
    args = parser.parse_args(argv)
    program = find_deadlinecommand() or "deadlinecommand"
    command = [program, *(str(HERE / name) for name in FILES)]
    if all((HERE / name).exists() for name in EXPORT_FILES):
        command = [program, "-SubmitMultipleJobs", "-dependent", "-job", *command[1:],
                   "-job", *(str(HERE / name) for name in EXPORT_FILES)]
    if args.dry_run:
        print(subprocess.list2cmdline(command) if os.name == "nt" else " ".join(map(repr, command)))
        return 0
    if program == "deadlinecommand":
        print("error: deadlinecommand is not on PATH (nor in $DEADLINE_PATH): install the Deadline Client, "
              "or run this on a machine that has it.", file=sys.stderr)
        return 3
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
