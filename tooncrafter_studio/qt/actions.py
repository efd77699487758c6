"""One command registry: every menu item, toolbar button and keyboard shortcut comes from here.

`COMMANDS` lists what the app can do (id, text, default keys, menu). The window binds a callback
to each id; menus, the toolbar and the settings dialog's shortcut table all read the same list,
and user overrides (Settings.shortcuts: id -> key sequence) are applied in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMenuBar, QToolBar, QWidget


@dataclass(frozen=True)
class CommandSpec:
    id: str
    text: str
    keys: tuple[str, ...] = ()
    menu: str = ""
    toolbar: bool = False
    checkable: bool = False
    tip: str = ""
    section: str = ""  # commands of one section stay together; a separator goes between sections


MENUS = ("File", "Edit", "Timeline", "View", "Generate", "Review", "Help")

COMMANDS: tuple[CommandSpec, ...] = (
    # File
    CommandSpec("new_project", "&New Project…", ("Ctrl+N",), "File", True,
                tip="Make a project from an image sequence, a video or loose images", section="open"),
    CommandSpec("new_from_pattern", "New Project from a Sequence &Pattern…", ("Ctrl+Shift+N",), "File",
                tip="e.g. /shots/sc01/frame.####.png or frame_%04d.png", section="open"),
    CommandSpec("open_project", "&Open Project…", ("Ctrl+O",), "File", True, section="open"),
    CommandSpec("save", "&Save", ("Ctrl+S",), "File", True, section="save"),
    CommandSpec("save_as", "Save &As…", ("Ctrl+Shift+S",), "File", section="save"),
    CommandSpec("export", "&Export PNG Sequence…", ("Ctrl+E",), "File", True, section="export"),
    CommandSpec("import_timing", "Import &Timing Sheet…", (), "File",
                tip="Set the exposures and the frames to in-between from an XDTS or CSV timing sheet",
                section="export"),
    CommandSpec("locate_missing", "&Locate Missing Drawings…", (), "File",
                tip="Point the project at the folder where its drawings are now (nothing is copied)", section="export"),
    CommandSpec("settings", "Se&ttings…", ("Ctrl+,",), "File", section="settings"),
    CommandSpec("quit", "&Quit", ("Ctrl+Q",), "File", section="quit"),
    # Edit
    CommandSpec("undo", "&Undo", ("Ctrl+Z",), "Edit", True, section="undo"),
    CommandSpec("redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit", True, section="undo"),
    # Timeline
    CommandSpec("set_key", "Set &Key", ("K",), "Timeline", tip="Mark the drawing at the current frame as a key", section="keys"),
    CommandSpec("remove_key", "&Remove Key", ("Shift+K",), "Timeline", section="keys"),
    CommandSpec("exposure_1", "Exposure on &1s", ("1",), "Timeline", section="exposure"),
    CommandSpec("exposure_2", "Exposure on &2s", ("2",), "Timeline", section="exposure"),
    CommandSpec("exposure_3", "Exposure on &3s", ("3",), "Timeline", section="exposure"),
    CommandSpec("exposure_n", "Exposure…", ("E",), "Timeline", section="exposure"),
    CommandSpec("insert_frame", "&Insert Frame", ("Insert", "+"), "Timeline",
                tip="Hold the drawing at the current frame one frame longer", section="frames"),
    CommandSpec("delete_frames", "&Delete Frames", ("Delete",), "Timeline",
                tip="Delete the selected frames (holds get shorter)", section="frames"),
    CommandSpec("select_pair", "Select Key &Pair", ("S",), "Timeline", section="frames"),
    CommandSpec("timeline_zoom_in", "Zoom Timeline In", ("=",), "Timeline", section="zoom"),
    CommandSpec("timeline_zoom_out", "Zoom Timeline Out", ("-",), "Timeline", section="zoom"),
    # View / playback
    CommandSpec("play", "&Play / Stop", ("Space",), "View", True, section="playback"),
    CommandSpec("loop", "&Loop", ("Ctrl+L",), "View", checkable=True, section="playback"),
    CommandSpec("play_range", "Play Selection &Range", ("Shift+Space",), "View", checkable=True, section="playback"),
    CommandSpec("prev_frame", "Previous Frame", ("Left", ","), "View", section="step"),
    CommandSpec("next_frame", "Next Frame", ("Right", "."), "View", section="step"),
    CommandSpec("prev_drawing", "Previous Drawing", ("Up",), "View", section="step"),
    CommandSpec("next_drawing", "Next Drawing", ("Down",), "View", section="step"),
    CommandSpec("first_frame", "First Frame", ("Home",), "View", section="step"),
    CommandSpec("last_frame", "Last Frame", ("End",), "View", section="step"),
    CommandSpec("onion_skin", "&Onion Skin", ("O",), "View", True, True, section="overlays"),
    CommandSpec("light_table", "&Light Table", ("T",), "View", True, True,
                tip="Overlay the two keys of the current segment", section="overlays"),
    CommandSpec("sketch_overlay", "Show S&ketches", ("Alt+S",), "View", True, True,
                tip="Overlay the sketch placed on the current in-between cell (also shown in the light table)", section="overlays"),
    CommandSpec("ab_flip", "A/&B Flip", ("B",), "View", True, True,
                tip="Flip between this frame and the compared take (or the nearest key)", section="overlays"),
    CommandSpec("show_rejected", "Show &Rejected Drawing", ("V",), "View", checkable=True,
                tip="On a rejected in-between, show its own drawing instead of the one held in its place", section="overlays"),
    CommandSpec("zoom_fit", "Zoom to &Fit", ("F",), "View", section="zoom"),
    CommandSpec("zoom_100", "Zoom &100 %", ("Ctrl+0",), "View", section="zoom"),
    CommandSpec("zoom_in", "Zoom In", ("Ctrl+=", "Ctrl++"), "View", section="zoom"),
    CommandSpec("zoom_out", "Zoom Out", ("Ctrl+-",), "View", section="zoom"),
    CommandSpec("show_log", "Show &Log", ("Ctrl+Shift+L",), "View", section="panels"),
    # Generate
    CommandSpec("generate", "&Generate Selection", ("G",), "Generate", True,
                tip="Generate in-betweens for the selected key pairs", section="generate"),
    CommandSpec("generate_all", "Generate &All Segments", ("Shift+G",), "Generate", section="generate"),
    CommandSpec("regenerate", "&Regenerate (New Seed)", ("R",), "Generate", section="generate"),
    CommandSpec("regenerate_rejected", "Regenerate Re&jected Frames", ("Shift+R",), "Generate", section="generate"),
    CommandSpec("cancel_jobs", "&Cancel All Jobs", ("Ctrl+Shift+X",), "Generate", section="jobs"),
    CommandSpec("free_gpu_memory", "&Free GPU Memory", (), "Generate", section="jobs",
                tip="Take the model off the GPU and give the memory back (the next job places it again)"),
    CommandSpec("go_to_new_frames", "Go to &New Frames", ("Ctrl+J",), "Generate",
                tip="Jump to the first frame to review of the take that finished last", section="jobs"),
    CommandSpec("engine_setup", "ToonCrafter &Engine…", (), "Generate",
                tip="Install the ToonCrafter engine for your GPU and download the model", section="engine"),
    # Review
    CommandSpec("accept_frame", "&Accept Frame", ("A",), "Review", section="frame"),
    CommandSpec("reject_frame", "Re&ject Frame", ("X",), "Review", section="frame"),
    CommandSpec("reset_frame", "Reset Frame to Pending", ("U",), "Review", section="frame"),
    CommandSpec("accept_take", "Accept &Whole Take", ("Shift+A",), "Review", section="take"),
    CommandSpec("reject_take", "Reject Whole &Take", ("Shift+X",), "Review", section="take"),
    CommandSpec("next_pending", "&Next Pending Frame", ("N",), "Review", section="pending"),
    CommandSpec("prev_pending", "&Previous Pending Frame", ("Shift+N",), "Review", section="pending"),
    CommandSpec("next_take", "Next Take", ("]",), "Review", section="takes"),
    CommandSpec("prev_take", "Previous Take", ("[",), "Review", section="takes"),
    # Help
    CommandSpec("shortcut_sheet", "&Keyboard Shortcuts", ("F1",), "Help", section="help"),
    CommandSpec("copy_diagnostics", "Copy &Diagnostics", (), "Help", section="help"),
    CommandSpec("about", "&About ToonCrafter Studio", (), "Help"),
)

SPECS = {spec.id: spec for spec in COMMANDS}


def about_text() -> str:
    from .. import __version__

    return (f"<b>ToonCrafter Studio {__version__}</b><br>In-betweens for 2D animation, on your own machine."
            "<br>Help ▸ Keyboard Shortcuts (F1) lists every command.")


def shortcut_sheet_html(registry: ActionRegistry) -> str:
    """A table per menu of every command and its current keys (user overrides included)."""
    parts = ["<h3>Keyboard shortcuts</h3>"]
    for menu in MENUS:
        rows = []
        for spec in COMMANDS:
            if spec.menu != menu:
                continue
            keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in registry[spec.id].shortcuts()]
            name = spec.text.replace("&", "").rstrip("…")
            rows.append(f"<tr><td>{name}</td><td><b>{' or '.join(keys) or '—'}</b></td></tr>")
        if rows:
            parts.append(f"<h4>{menu}</h4><table cellspacing='4'>{''.join(rows)}</table>")
    return "".join(parts)


class ActionRegistry:
    """QActions for every command, with shortcuts from the defaults or the user's overrides."""

    def __init__(self, window: QWidget, overrides: dict[str, str] | None = None) -> None:
        self.window = window
        self.actions: dict[str, QAction] = {}
        for spec in COMMANDS:
            action = QAction(spec.text, window)
            action.setObjectName(f"action_{spec.id}")
            action.setCheckable(spec.checkable)
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if spec.tip:
                action.setStatusTip(spec.tip)
            window.addAction(action)  # shortcuts work even when menus are hidden
            self.actions[spec.id] = action
        self.apply_shortcuts(overrides or {})

    def __getitem__(self, command_id: str) -> QAction:
        return self.actions[command_id]

    def bind(self, command_id: str, callback: Callable[[], object]) -> None:
        action = self.actions[command_id]
        if action.isCheckable():
            action.toggled.connect(lambda _checked: callback())
        else:
            action.triggered.connect(lambda _checked=False: callback())

    def trigger(self, command_id: str) -> None:
        self.actions[command_id].trigger()

    def shortcuts(self, command_id: str, overrides: dict[str, str] | None = None) -> list[str]:
        """The key sequences of a command: the user's override (comma-free text) or the defaults."""
        if overrides and command_id in overrides:
            text = overrides[command_id].strip()
            return [part.strip() for part in text.split(";") if part.strip()] if text else []
        return list(SPECS[command_id].keys)

    def apply_shortcuts(self, overrides: dict[str, str]) -> None:
        for command_id, action in self.actions.items():
            keys = self.shortcuts(command_id, overrides)
            action.setShortcuts([QKeySequence(k) for k in keys])
            spec = SPECS[command_id]
            tip = spec.tip or spec.text.replace("&", "").rstrip("…")
            action.setToolTip(f"{tip} ({keys[0]})" if keys else tip)

    def conflicts(self) -> dict[str, list[str]]:
        """Key sequences bound to more than one command (shown in the settings dialog)."""
        seen: dict[str, list[str]] = {}
        for command_id, action in self.actions.items():
            for key in action.shortcuts():
                seen.setdefault(key.toString(), []).append(command_id)
        return {k: v for k, v in seen.items() if len(v) > 1 and k}

    def build_menus(self, menubar: QMenuBar) -> None:
        menus = {name: menubar.addMenu(f"&{name}") for name in MENUS}
        last_section: dict[str, str] = {}
        for spec in COMMANDS:
            if not spec.menu:
                continue
            menu = menus[spec.menu]
            if spec.menu in last_section and spec.section != last_section[spec.menu]:
                menu.addSeparator()  # between sections only: a pair (Previous | Next) is never split
            last_section[spec.menu] = spec.section
            menu.addAction(self.actions[spec.id])
        self.menus = menus

    def build_toolbar(self, toolbar: QToolBar) -> None:
        previous_menu = None
        for spec in COMMANDS:
            if not spec.toolbar:
                continue
            if previous_menu is not None and spec.menu != previous_menu:
                toolbar.addSeparator()
            previous_menu = spec.menu
            toolbar.addAction(self.actions[spec.id])
