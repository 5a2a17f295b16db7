#!/usr/bin/env bash
# Install the Debian packages a make target needs (.ci/debian-packages.txt): as root with
# apt-get; otherwise print the exact command to run and stop (exit 1).
# Usage: .ci/debian-deps.sh TARGET   (demo | test)
set -euo pipefail
TARGET="${1:?usage: debian-deps.sh demo|test}"
LIST="${DM_DEBIAN_PACKAGES:-$(dirname "$0")/debian-packages.txt}"

wanted=()
while read -r package targets; do
  targets="${targets%%#*}"
  [[ -z "$package" || "$package" == \#* ]] && continue
  [[ " $targets " == *" $TARGET "* ]] && wanted+=("$package")
done < "$LIST"

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "debian-deps: all ${#wanted[@]} packages for '$TARGET' are installed"
  exit 0
fi
command=(apt-get install -y --no-install-recommends "${missing[@]}")
if [[ $(id -u) -ne 0 ]]; then
  echo "debian-deps: '$TARGET' needs Debian packages that are missing; run as root:" >&2
  echo "  apt-get update && ${command[*]}" >&2
  exit 1
fi
echo "debian-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
"${command[@]}" -qq > /dev/null
