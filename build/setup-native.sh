#!/usr/bin/env bash
# Ensures a libstdc++ providing GLIBCXX_3.4.32 (GCC 13+) is installed.
# TorchSharp-cpu 0.107.0's libLibTorchSharp.so requires it.
# Idempotent: does nothing if the requirement is already met.
# On Debian 12 (bookworm) as root it installs libstdc++6 from Debian 13 (trixie),
# pinned at priority 100 so nothing else moves to trixie on upgrades.
set -euo pipefail

REQUIRED=GLIBCXX_3.4.32

find_libstdcxx() {
  local p
  p=$(ldconfig -p 2>/dev/null | awk '/libstdc\+\+\.so\.6 .*x86-64/ {print $NF; exit}') || true
  if [[ -z "${p:-}" ]]; then
    for c in /usr/lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
      if [[ -e "$c" ]]; then p=$c; break; fi
    done
  fi
  echo "${p:-}"
}

has_required() {
  local lib
  lib=$(find_libstdcxx)
  [[ -n "$lib" ]] && grep -aq "$REQUIRED" "$lib"
}

if has_required; then
  echo "setup-native: $(find_libstdcxx) already provides $REQUIRED; nothing to do."
  exit 0
fi

codename=""
if [[ -r /etc/os-release ]]; then
  codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
fi

if [[ "$codename" != "bookworm" || "$(id -u)" -ne 0 ]]; then
  cat >&2 <<MSG
setup-native: ERROR: the system libstdc++ ($(find_libstdcxx || true)) does not provide $REQUIRED,
which TorchSharp-cpu 0.107.0 (libLibTorchSharp.so) needs.
Install a libstdc++ that provides $REQUIRED (e.g. the libstdc++6 of GCC 13 or newer:
Debian 13 / Ubuntu 24.04 'libstdc++6', or conda-forge 'libstdcxx-ng>=13'),
then re-run this script. (Automatic install is only done on Debian 12 'bookworm' as root;
here: codename='${codename:-unknown}', uid=$(id -u).)
MSG
  exit 1
fi

echo "setup-native: installing libstdc++6 from Debian trixie (pinned, priority 100)..."
cat > /etc/apt/sources.list.d/debian-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
cat > /etc/apt/preferences.d/debian-trixie.pref <<'PREF'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PREF

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y -t trixie libstdc++6

if has_required; then
  echo "setup-native: done; $(find_libstdcxx) now provides $REQUIRED."
else
  echo "setup-native: ERROR: libstdc++6 from trixie installed but $REQUIRED still missing." >&2
  exit 1
fi
