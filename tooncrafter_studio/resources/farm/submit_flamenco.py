"""Submit a ToonCrafter Studio batch to a Flamenco 3 Manager (written by `farm export --format flamenco`).

This file is the same for every export: the batch is flamenco_job.json beside it, read as data.
The Manager needs the job type tooncrafter.js in its scripts/ folder once (one type for all batches).

    python submit_flamenco.py [--manager URL] [--project-dir PATH] [--worker-tag UUID] [--dry-run]

--manager      the Manager's address (default $FLAMENCO_MANAGER, else http://localhost:8080)
--project-dir  the project folder as the Workers see it (default: the submitting machine's path)
--dry-run      print the job that would be sent and send nothing
Only the Python standard library is used: POST /api/v3/jobs with the job as JSON.
"""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

DATA = Path(__file__).resolve().with_name("flamenco_job.json")
PLATFORMS = {"win32": "windows", "darwin": "darwin"}


def submitted_job(job, project_dir, worker_tag):
    body = {"name": job["name"], "type": job["type"], "priority": job["priority"],
            "submitter_platform": PLATFORMS.get(sys.platform, "linux"),
            "settings": {**job["settings"], "project_dir": project_dir},
            "metadata": {"batch": job["settings"]["batch"]}}
    if worker_tag:
        body["worker_tag"] = worker_tag
    return body


def main(argv=None):
    job = json.loads(DATA.read_text(encoding="utf-8"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manager", default=os.environ.get("FLAMENCO_MANAGER", "http://localhost:8080"))
    parser.add_argument("--project-dir", default=job["settings"]["project_dir"])
    parser.add_argument("--worker-tag", default=job.get("worker_tag"), help="UUID of a worker tag (GPU hosts)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    body = submitted_job(job, args.project_dir, args.worker_tag)
    if args.dry_run:
        print(json.dumps(body, indent=2))
        return 0
    url = args.manager.rstrip("/") + "/api/v3/jobs"
    request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"), method="POST",
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read().decode("utf-8") or "{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode("utf-8", "replace")
        print(f"error: the Flamenco Manager refused the job ({exc.code}): {' '.join(detail.split())}",
              file=sys.stderr)
        return 2
    except (urllib.error.URLError, OSError) as exc:
        print(f"error: cannot reach the Flamenco Manager at {args.manager}: {exc}", file=sys.stderr)
        return 3
    print(f"submitted job {answer.get('id', '?')}: {len(json.loads(job['settings']['tasks']))} tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
