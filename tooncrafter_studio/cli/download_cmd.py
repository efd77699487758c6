"""`tooncrafter-studio models download`: fetch the weights from the hub, only when asked.

    models download [--repo Doubiiu/ToonCrafter] [--file model.ckpt] [--out FOLDER] [--yes]
                    [--convert] [--delete-original]

Shows the size and the free space first and asks; Ctrl+C pauses (the same command continues); the
checksum the hub publishes is verified before the file gets its name; then offers the conversion
to fp16 safetensors (half the size, never unpickled).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ..core.errors import InputError
from ..core.paths import user_models_dir
from ..setup import model_download as md
from .progress import TqdmProgress

CONVERTED_NAME = md.CONVERTED_NAME


def add_download_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="download the ToonCrafter weights from Hugging Face (asks first)",
                       description="Download a weight file from the Hugging Face hub into the models folder: "
                                   "shows its size first, checks free space, resumes an interrupted download, "
                                   "verifies the published checksum. HF_ENDPOINT selects another hub.")
    p.add_argument("--repo", default=md.DEFAULT_REPO, help=f"repository (default {md.DEFAULT_REPO})")
    p.add_argument("--file", default=md.DEFAULT_FILE, help=f"file in the repository (default {md.DEFAULT_FILE})")
    p.add_argument("--revision", default="main", help="branch, tag or commit (default main)")
    p.add_argument("--out", metavar="FOLDER", default=None, help=f"where to put it (default {user_models_dir()})")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask before downloading")
    p.add_argument("--convert", action="store_true", help=f"then convert it to fp16 {CONVERTED_NAME}")
    p.add_argument("--delete-original", action="store_true", help="after a successful --convert, delete the download")
    p.set_defaults(handler=run_download)


def _ask(question: str, assume_yes: bool) -> bool:
    if assume_yes:
        return True
    if not sys.stdin.isatty():
        raise InputError("Not asking without a terminal: add --yes to download.")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run_download(args: argparse.Namespace) -> int:
    out_dir = Path(args.out) if args.out else user_models_dir()
    info = md.fetch_info(args.repo, args.file, args.revision)
    dest = out_dir / info.local_name
    commit = (info.commit or "?")[:10]
    checksum = f"{info.checksum_kind} {info.checksum[:16]}…" if info.checksum_kind else "no checksum published"  # type: ignore[index]
    print(f"{info.filename} from {info.repo} (commit {commit}): {md.format_size(info.size)}, {checksum}")
    if dest.is_file() and dest.stat().st_size == info.size:
        print(f"already downloaded: {dest}")
    else:
        have = md.partial_bytes(info, out_dir)
        md.check_free_space(info, out_dir)
        free = shutil.disk_usage(out_dir).free
        note = f"; {md.format_size(have)} already downloaded, continuing" if have else ""
        print(f"into {dest} ({md.format_size(free)} free{note})")
        if not _ask(f"Download {md.format_size(info.size - have)}?", args.yes):
            print("Nothing downloaded.")
            return 0
        try:
            with TqdmProgress(quiet=args.quiet) as progress:
                dest = md.download(info, out_dir, progress)
        except KeyboardInterrupt:
            print(f"\nPaused at {md.format_size(md.partial_bytes(info, out_dir))}; run the same command to continue.",
                  file=sys.stderr)
            return 130
        print(f"downloaded and verified: {dest}")
    if dest.suffix != ".safetensors" and (args.convert or (sys.stdin.isatty() and not args.yes and _ask(
            f"Convert it to fp16 {CONVERTED_NAME} (about half the size, faster to load)?", False))):
        delete = args.delete_original or (sys.stdin.isatty() and not args.yes and _ask(
            f"Delete {dest.name} after converting?", False))
        print("converting (this reads the whole file; a few minutes)...")
        converted = md.convert_download(dest, delete)
        print(f"converted: {converted}" + (f" (deleted {dest.name})" if delete else ""))
    return 0
