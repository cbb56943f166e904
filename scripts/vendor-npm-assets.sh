#!/usr/bin/env bash
# Re-fetch the vendored assets listed in DEST/MANIFEST (server/static/graphiql, the GraphiQL
# playground; server/static/admin, the dashboard) from their npm packages and check each
# against its pinned hash (the integrity's prefix names the algorithm: sha256-…, sha384-…).
# Changing a version means editing MANIFEST (version and hash) and what refers to the file
# (the page, its integrity attribute, LICENSES.md); the server itself never fetches anything.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:?usage: scripts/vendor-npm-assets.sh server/static/<graphiql|admin>}
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
  algorithm=${integrity%%-*}
  actual="$algorithm-$(openssl dgst -"$algorithm" -binary "$dir/package/$path" | base64 -w0)"
  if [ "$actual" != "$integrity" ]; then
    echo "$package $path: expected $integrity, got $actual" >&2
    exit 1
  fi
  cp "$dir/package/$path" "$dest/$file"
  echo "$file <- $package/$path"
done
