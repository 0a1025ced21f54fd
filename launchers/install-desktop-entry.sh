#!/usr/bin/env sh
# Install the Linux menu / desktop entry for this clone: sh launchers/install-desktop-entry.sh
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
target="${XDG_DATA_HOME:-$HOME/.local/share}/applications/bone-fracture-detection.desktop"
mkdir -p "$(dirname "$target")"
sed "s|REPO_DIR|$repo|g" "$repo/launchers/bone-fracture-detection.desktop" > "$target"
chmod +x "$target"
echo "Installed $target (find 'Bone Fracture Detection' in your applications menu)."
