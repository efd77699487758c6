"""The shot document: model (document.py), timeline resolution (resolve.py), undoable commands
(commands.py), versioned JSON (serialize.py) and the project folder with autosave (project.py)."""
