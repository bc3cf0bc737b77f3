#!/usr/bin/env bash
# Runs every test of hapair, as CI does: installs the Debian packages the
# tests need when they are missing, checks formatting and lints, builds the
# workspace and runs all its tests, the root-only network-namespace lab
# included. Run it as root on Debian or Ubuntu:
#
#     sudo scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# iproute2: the lab's namespaces, veths and bridge; keepalived: the VRRP
# interop peer; tshark: packet dissection; libnbd-bin (nbdinfo, nbdcopy,
# nbdfuse), qemu-utils (qemu-io), fuse3, e2fsprogs: real NBD clients and a
# real filesystem on replicad's volumes; nbdkit: a backing disk that fails
# on demand (its error filter); drbd-utils: drbdadm, the real drbd.conf
# parser that haadm's drbd.conf reader is compared with; python3: the HTTP
# file server of the end-to-end tests and the demo (scripts/fileserver.py);
# curl, jq: the demo's client and its reading of JSON states; psmisc:
# fuser, with which the demote hook finds and stops what keeps a mount busy.
packages=(iproute2 procps keepalived tshark libnbd-bin qemu-utils fuse3 e2fsprogs nbdkit drbd-utils python3 curl jq psmisc)

missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        echo "test.sh: missing packages ${missing[*]}; run as root to install them" >&2
        exit 1
    fi
    echo "test.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; they need not.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ $(id -u) -ne 0 ]]; then
    echo "test.sh: not root: the network-namespace lab tests will be skipped" >&2
fi

echo "test.sh: checking formatting and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "test.sh: building"
cargo build --workspace --all-targets --locked

echo "test.sh: running the tests"
cargo test --workspace --locked
