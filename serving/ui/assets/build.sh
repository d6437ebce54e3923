#!/usr/bin/env bash
# Build the /ui vendor assets: `npm ci` the pinned htmx + Chart.js (package-lock.json), then copy
# the two browser bundles into serving/ui/static/vendor/ (gitignored; the app serves them, no CDN).
# Exit 3 when npm is missing (the page then says its scripts are not built).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$here/../static/vendor"
command -v npm >/dev/null 2>&1 || { echo "[ui] npm not found: /ui assets not built" >&2; exit 3; }
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
mkdir -p "$dest"
cp "$here/node_modules/htmx.org/dist/htmx.min.js" "$dest/htmx.min.js"
cp "$here/node_modules/chart.js/dist/chart.umd.js" "$dest/chart.umd.js"
echo "[ui] assets copied to $dest" >&2
