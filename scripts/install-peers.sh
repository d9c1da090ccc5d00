#!/bin/sh
# Install the real peer tools the tests and the demo use (Debian packages), when missing.
# As root this runs apt-get; otherwise it only reports what is missing (tests then skip
# with a reason, or fail under OCI_REQUIRE_PEERS=1).
set -eu
need=""
check() { command -v "$1" >/dev/null 2>&1 || need="$need $2"; }
check skopeo skopeo
check umoci umoci
check docker-registry docker-registry
check runc runc
check podman podman
check buildah buildah
check busybox busybox-static
check htpasswd apache2-utils
check fuse-overlayfs fuse-overlayfs
check containers-storage containers-storage
[ -x /bin/busybox ] || need="$need busybox-static"
need=$(echo "$need" | tr ' ' '\n' | sort -u | tr '\n' ' ')
if [ -z "$(echo "$need" | tr -d ' ')" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing peer tools:$need" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq $need >/dev/null
else
    echo "warning: missing peer tools:$need (run as root to install them)" >&2
fi
