#!/bin/bash
# Makes sure the system programs the sandbox host and the tests need are present. As root it
# installs what is missing with apt-get; otherwise it names the packages in one message.
set -euo pipefail

missing=()
need() { # need <package> <path-or-command>...
  local pkg=$1; shift
  local p
  for p in "$@"; do
    if [[ $p == /* ]]; then compgen -G "$p" >/dev/null && return 0
    else command -v "$p" >/dev/null 2>&1 && return 0; fi
  done
  missing+=("$pkg")
}

need openssh-server /usr/sbin/sshd
need openssh-client ssh-keygen
need redis-server redis-server
need redis-tools redis-cli
need postgresql '/usr/lib/postgresql/*/bin/postgres'
need postgresql-client psql
need sudo sudo
need rsync rsync
need zstd zstd
need python3 /usr/bin/python3
need procps ps
need util-linux setsid
# Off-site copies (offsite.py) drive restic; its tests need openssl for the S3 server's certificate.
need restic restic
need openssl openssl
# The systemd test host (test/sandbox/systemdHost.ts): a real systemd booted with systemd-nspawn.
need systemd-container /usr/bin/systemd-nspawn
need systemd /lib/systemd/systemd
# The extension-host suite and UI journeys: code-server opened in Debian's chromium (playwright-core
# drives it); libkrb5-dev for the one native module of code-server that may build from source.
need chromium /usr/bin/chromium
need libkrb5-dev /usr/include/gssapi/gssapi.h

if [ ${#missing[@]} -eq 0 ]; then exit 0; fi

if [ "$(id -u)" -ne 0 ]; then
  echo "Kadi Ops tests need these Debian packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}   (or run this as root)" >&2
  exit 1
fi

echo "Installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
