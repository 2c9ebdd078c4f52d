#!/usr/bin/env bash
# Checks that the CMake and Bazel builds name the same C++ sources: every .cc
# file under common/ verifier/ policy/ kbs/ tests/ bench/ fuzz/ named in a
# folder's CMakeLists.txt must be named in its BUILD.bazel, and the other way
# round. Also fails if a named file does not exist.
#
# A source is "named" when its path relative to the build file's folder appears
# as a word ending in .cc (generated *.pb.cc files are skipped). Folders that
# build targets from a name template (fuzz/: CMake `${name}.cc` over a list of
# `name:deps` entries, Bazel `name + ".cc"` over a dict `"name": [deps]`) also
# name <entry>.cc for every list entry.
#
# Usage: scripts/check-build-files.sh   (exit 0: in step, 1: mismatch)
set -euo pipefail
cd "$(dirname "$0")/.."

dirs=(common verifier policy policy/cel kbs tests bench fuzz)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# names <dir> <build file>: prints <dir>/<path>.cc for every .cc it names.
names() {
  local dir=$1 file=$2
  [ -f "$dir/$file" ] || return 0
  # Strip comments, then take every word ending in .cc.
  sed -e 's/#.*$//' "$dir/$file" |
    grep -oE '[A-Za-z0-9_./+-]+\.cc\b' |
    grep -vE '\.pb\.cc$|^/' |
    sed -e "s|^\./||" -e "s|^|$dir/|" || true
  # Name templates.
  if [ "$file" = CMakeLists.txt ] && grep -q '\${name}\.cc' "$dir/$file"; then
    sed -e 's/#.*$//' "$dir/$file" |
      sed -nE 's/^[[:space:]]*([A-Za-z0-9_]+):[A-Za-z0-9_+:]+[[:space:]]*\)?[[:space:]]*$/\1/p' |
      sed -e "s|^|$dir/|" -e 's|$|.cc|'
  fi
  if [ "$file" = BUILD.bazel ] && grep -q 'name + "\.cc"' "$dir/$file"; then
    sed -e 's/#.*$//' "$dir/$file" |
      sed -nE 's/^[[:space:]]*"([A-Za-z0-9_]+)":[[:space:]]*\[.*$/\1/p' |
      sed -e "s|^|$dir/|" -e 's|$|.cc|'
  fi
}

for d in "${dirs[@]}"; do
  [ -f "$d/CMakeLists.txt" ] || { echo "missing $d/CMakeLists.txt" >&2; exit 1; }
  [ -f "$d/BUILD.bazel" ] || { echo "missing $d/BUILD.bazel" >&2; exit 1; }
  names "$d" CMakeLists.txt >>"$tmp/cmake"
  names "$d" BUILD.bazel >>"$tmp/bazel"
done
sort -u -o "$tmp/cmake" "$tmp/cmake"
sort -u -o "$tmp/bazel" "$tmp/bazel"

status=0
only_cmake=$(comm -23 "$tmp/cmake" "$tmp/bazel")
only_bazel=$(comm -13 "$tmp/cmake" "$tmp/bazel")
if [ -n "$only_cmake" ]; then
  echo "named in a CMakeLists.txt but in no BUILD.bazel:"; sed 's/^/  /' <<<"$only_cmake"; status=1
fi
if [ -n "$only_bazel" ]; then
  echo "named in a BUILD.bazel but in no CMakeLists.txt:"; sed 's/^/  /' <<<"$only_bazel"; status=1
fi
missing=$(sort -u "$tmp/cmake" "$tmp/bazel" | while read -r f; do [ -f "$f" ] || echo "$f"; done)
if [ -n "$missing" ]; then
  echo "named in a build file but not on disk:"; sed 's/^/  /' <<<"$missing"; status=1
fi
# Not an error (neither build compiles it), but worth a look.
unbuilt=$(find "${dirs[@]}" -name '*.cc' | sort -u | comm -23 - <(sort -u "$tmp/cmake" "$tmp/bazel"))
[ -z "$unbuilt" ] || { echo "note: .cc files named in neither build:"; sed 's/^/  /' <<<"$unbuilt"; }
[ $status -eq 0 ] && echo "check-build-files: $(wc -l <"$tmp/cmake") sources, CMake and Bazel agree"
exit $status
