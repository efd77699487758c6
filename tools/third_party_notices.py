"""Write THIRD_PARTY_NOTICES.txt: the licence of every distribution the bundle carries.

    python tools/third_party_notices.py [--out packaging/THIRD_PARTY_NOTICES.txt]

Walks the requirements of tooncrafter-studio (plus the `gui` extra the bundle carries: Qt) in the
installed environment and copies each distribution's licence text (or names its licence where no file
is shipped).
"""

from __future__ import annotations

import argparse
import re
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ROOT_DIST = "tooncrafter-studio"
BUNDLED_EXTRAS = ("gui",)  # the extras the frozen app carries (PySide6 is the gui extra)


def _bundled(requirement: str) -> bool:
    marker = requirement.partition(";")[2]
    if "extra ==" not in marker:
        return True
    return any(re.search(rf"extra\s*==\s*['\"]{extra}['\"]", marker) for extra in BUNDLED_EXTRAS)


def _name(requirement: str) -> str:
    return re.split(r"[ ;<>=!~\[(]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def dependency_closure(root: str = ROOT_DIST) -> list[metadata.Distribution]:
    seen: dict[str, metadata.Distribution] = {}
    todo = [_name(r) for r in (metadata.requires(root) or []) if _bundled(r)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen[name] = dist
        todo += [_name(r) for r in (dist.requires or []) if "extra ==" not in r]
    return sorted(seen.values(), key=lambda d: d.metadata["Name"].lower())


def licence_texts(dist: metadata.Distribution) -> list[str]:
    texts = []
    for file in dist.files or []:
        if re.search(r"(LICEN[CS]E|COPYING|NOTICE|AUTHORS)[^/]*$", file.name, re.IGNORECASE):
            try:
                texts.append(f"--- {file.name} ---\n" + Path(dist.locate_file(file)).read_text(errors="replace"))
            except OSError:
                pass
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "packaging" / "THIRD_PARTY_NOTICES.txt")
    out = parser.parse_args().out
    parts = ["ToonCrafter Studio is licensed under the Apache License 2.0 (LICENSE).\n"
             "It bundles the following software, each under its own licence:\n"]
    for dist in dependency_closure():
        meta = dist.metadata
        licence = meta.get("License-Expression") or meta.get("License") or ", ".join(
            c.split("::")[-1].strip() for c in meta.get_all("Classifier") or [] if c.startswith("License ::"))
        parts.append(f"\n{'=' * 78}\n{meta['Name']} {dist.version}  ({(licence or 'see below').splitlines()[0]})\n"
                     f"{meta.get('Home-page') or ''}\n{'=' * 78}\n")
        parts += licence_texts(dist)
    parts.append("\nQt (through PySide6) is used under the LGPL v3; its libraries are separate files in the "
                 "bundle and can be replaced.\n")
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
