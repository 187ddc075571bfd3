#!/bin/sh
# deps.sh — install the Debian packages that building and testing Berth need,
# when any is missing.  Run as root (CI is); otherwise it prints the command.
#   deps.sh --build   only what building and running berth needs (make deps)
#   deps.sh           that and everything the tests start: sshd, Ceph, ... (make check)
set -eu

PKGS="gcc make pkg-config libc6-dev
libarchive-dev libzstd-dev libssl-dev libsqlite3-dev libjson-c-dev libcurl4-openssl-dev
libssh2-1-dev libxml2-dev docker.io"
if [ "${1:-}" != --build ]; then
        PKGS="$PKGS systemd man-db groff-base
libcmocka-dev bats python3 acl attr sqlite3 zstd libarchive-tools tar util-linux procps time
busybox-static openssh-server openssh-client
ceph-mon ceph-osd radosgw ceph-common"
fi

missing=""
for p in $PKGS; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing="$missing $p"
        fi
done
[ -z "$missing" ] && exit 0

echo "deps.sh: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
        echo "deps.sh: not root; run: sudo apt-get install$missing" >&2
        exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
