#!/bin/sh
# Wrap the PyInstaller bundle (dist/tooncrafter-studio/, from `make package`) into an AppImage.
#   packaging/linux/build_appimage.sh   -> dist/ToonCrafter_Studio-<version>-x86_64.AppImage
# Needs appimagetool (https://github.com/AppImage/appimagetool) on PATH or in $APPIMAGETOOL;
# without it the AppDir is left in build/AppDir for inspection.
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUNDLE="$ROOT/dist/tooncrafter-studio"
APPDIR="$ROOT/build/AppDir"
VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$ROOT/tooncrafter_studio/__init__.py")
ARCH=$(uname -m)
[ -x "$BUNDLE/tooncrafter-studio" ] || { echo "run 'make package' first ($BUNDLE missing)"; exit 1; }
rm -rf "$APPDIR"
mkdir -p "$APPDIR/usr/lib" "$APPDIR/usr/share/applications" "$APPDIR/usr/share/icons/hicolor/256x256/apps"
cp -a "$BUNDLE" "$APPDIR/usr/lib/tooncrafter-studio"
cp "$ROOT/packaging/linux/tooncrafter-studio.desktop" "$APPDIR/tooncrafter-studio.desktop"
cp "$ROOT/packaging/linux/tooncrafter-studio.desktop" "$APPDIR/usr/share/applications/"
cp "$ROOT/tooncrafter_studio/resources/icons/icon-256.png" "$APPDIR/tooncrafter-studio.png"
cp "$ROOT/tooncrafter_studio/resources/icons/icon-256.png" "$APPDIR/usr/share/icons/hicolor/256x256/apps/tooncrafter-studio.png"
cat > "$APPDIR/AppRun" <<'RUN'
#!/bin/sh
# No arguments: the studio; `AppRun engine install`, `AppRun models download` ...: the CLI.
HERE=$(dirname "$(readlink -f "$0")")
exec "$HERE/usr/lib/tooncrafter-studio/tooncrafter-studio" "$@"
RUN
chmod +x "$APPDIR/AppRun"
TOOL=${APPIMAGETOOL:-$(command -v appimagetool || true)}
if [ -z "$TOOL" ]; then
    echo "appimagetool not found: AppDir ready in $APPDIR"
    exit 0
fi
ARCH="$ARCH" "$TOOL" "$APPDIR" "$ROOT/dist/ToonCrafter_Studio-$VERSION-$ARCH.AppImage"
