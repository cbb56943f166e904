#!/usr/bin/env bash
# Re-fetch the dashboard's vendored assets listed in server/static/admin/MANIFEST from their npm
# packages and check each against its pinned sha256. Changing a version means editing MANIFEST
# (version and hash), LICENSES.md and the page's integrity attribute; the server itself never
# fetches anything.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=server/static/admin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -v '^#' "$dest/MANIFEST" | while read -r file package path integrity; do
  [ -n "$file" ] || continue
  dir="$work/$(echo "$package" | tr '/@' '__')"
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"
    tarball=$(cd "$dir" && npm pack --silent "$package")
    tar xzf "$dir/$tarball" -C "$dir"
  fi
  actual="sha256-$(openssl dgst -sha256 -binary "$dir/package/$path" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "$package $path: expected $integrity, got $actual" >&2
    exit 1
  fi
  cp "$dir/package/$path" "$dest/$file"
  echo "$file <- $package/$path"
done
