#!/usr/bin/env bash
# Re-vendor the front-end assets from the npm registry at pinned versions (no CDN at run time).
# Usage: bash scripts/vendor_static.sh   -> rewrites static/vendor/ and static/VENDORED.md
set -euo pipefail
cd "$(dirname "$0")/.."

# package@version | destination dir | files to copy from the tarball's package/ folder
ASSETS=(
  "htmx.org@2.0.11|static/vendor/htmx|dist/htmx.min.js LICENSE"
  "@picocss/pico@2.1.1|static/vendor/pico|css/pico.min.css LICENSE.md"
  "leaflet@1.9.4|static/vendor/leaflet|dist/leaflet.js dist/leaflet.css dist/images/layers.png dist/images/layers-2x.png dist/images/marker-icon.png dist/images/marker-icon-2x.png dist/images/marker-shadow.png LICENSE"
  "html5-qrcode@2.3.8|static/vendor/html5-qrcode|html5-qrcode.min.js LICENSE"
  "idb-keyval@6.3.0|static/vendor/idb-keyval|dist/umd.js LICENCE"
)

command -v npm >/dev/null || { echo "vendor_static: npm is required" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

manifest="$tmp/VENDORED.md"
{
  echo "# Vendored front-end assets"
  echo
  echo "Fetched from the npm registry with \`npm pack\` at pinned versions and committed;"
  echo "the application serves them from \`/static/vendor/\`, never from a CDN."
  echo "Reproduce with \`bash scripts/vendor_static.sh\`."
  echo
  echo "| package | version | licence | file | sha256 |"
  echo "| --- | --- | --- | --- | --- |"
} >"$manifest"

for entry in "${ASSETS[@]}"; do
  IFS='|' read -r spec dest files <<<"$entry"
  pkg="${spec%@*}"
  ver="${spec##*@}"
  echo "vendor: $spec -> $dest"
  work="$tmp/$(echo "$pkg" | tr '/@' '__')"
  mkdir -p "$work"
  tarball="$(cd "$work" && npm pack --silent "$spec" | tail -n 1)"
  tar -xzf "$work/$tarball" -C "$work"
  licence="$(node -p "require('$work/package/package.json').license")"
  rm -rf "$dest"
  mkdir -p "$dest"
  for f in $files; do
    # the package's first folder (dist/, css/) is dropped; deeper folders are kept, so
    # leaflet.css still finds images/ beside it
    rel="${f#*/}"
    [ "$rel" = "$f" ] && rel="$(basename "$f")"
    mkdir -p "$(dirname "$dest/$rel")"
    cp "$work/package/$f" "$dest/$rel"
    sum="$(sha256sum "$dest/$rel" | cut -d' ' -f1)"
    echo "| \`$pkg\` | $ver | $licence | \`$dest/$rel\` (from \`$f\`) | \`$sum\` |" >>"$manifest"
  done
done

cp "$manifest" static/VENDORED.md
echo "vendor: wrote static/VENDORED.md"
