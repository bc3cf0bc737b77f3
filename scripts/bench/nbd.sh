#!/usr/bin/env bash
# nbd.sh: compares replicad's NBD export (one node, StandAlone, protocol C,
# internal metadata) with the unreplicated baseline `nbdkit file`, in the
# same run, on backing files of the same size, on tmpfs and on disk (a
# directory under /var/tmp). Run as root on Debian or Ubuntu:
#
#     sudo scripts/bench/nbd.sh [-t SECONDS_PER_JOB] [-s BACKING_MIB] [-e nbd|libaio]
#
# Jobs, each time-based, in this order on one fresh server and backing file
# per storage (page cache dropped before each job): sequential 1 MiB writes then reads at iodepth 4, and 4 KiB
# random writes at iodepth 1 and 32, all over the same region. fio drives
# the export with its nbd ioengine (libnbd, over the Unix socket); if this
# fio lacks it, fio uses libaio with O_DIRECT on a loop device over nbdfuse
# for both servers instead (-e libaio forces that), and the output says
# so. It ends with a Markdown
# table (MiB/s, IOPS, p99 completion latency, replicad/nbdkit ratio);
# docs/BENCHMARKS.md explains the method and keeps results.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/lab.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lab.sh"

SERVERS=(replicad nbdkit)
STORAGES=(tmpfs disk)
# "name rw block-size iodepth" per job, in the order they run.
JOBS=("seq-write-1M write 1M 4" "seq-read-1M read 1M 4" "rand-write-4K-qd1 randwrite 4k 1" "rand-write-4K-qd32 randwrite 4k 32")
SOCKET_TIMEOUT_MS=15000
# The replication port in replicad's configuration; both nodes are on
# loopback and the peer (127.0.0.2) never runs, so nothing leaves the host.
PEER_PORT=7789

usage() {
    echo "usage: $0 [-t SECONDS_PER_JOB] [-s BACKING_MIB] [-e nbd|libaio]"
    echo "  defaults: 10 s, 1024 MiB, fio's nbd engine when it has one; needs root"
}

runtime=10
backing_mib=1024
ENGINE=""
while getopts "t:s:e:h" option; do
    case $option in
        t) runtime=$OPTARG ;;
        s) backing_mib=$OPTARG ;;
        e) ENGINE=$OPTARG ;;
        h)
            usage
            exit 0
            ;;
        *)
            usage >&2
            exit 2
            ;;
    esac
done
if ! [[ $runtime =~ ^[1-9][0-9]*$ && $backing_mib =~ ^[1-9][0-9]*$ ]] || ((backing_mib < 128)); then
    echo "nbd.sh: -t takes whole seconds (at least 1) and -s whole MiB (at least 128)" >&2
    exit 2
fi
if [[ -n $ENGINE && $ENGINE != nbd && $ENGINE != libaio ]]; then
    echo "nbd.sh: -e takes nbd or libaio, not '$ENGINE'" >&2
    exit 2
fi
# fio works on the same region for both servers: replicad's usable size is
# a little smaller than its backing file (the metadata is inside).
job_mib=$((backing_mib - 64))

lab_init nbd
[[ $(id -u) -eq 0 ]] || lab_fail "run me as root: tmpfs mounts (and loop devices, without fio's nbd engine) need it"
lab_install_packages fio nbdkit libnbd-bin jq util-linux

SERVER_PID=""
TMPFS_DIR="$LAB_DIR/tmpfs"
DISK_DIR=""
LOOP_DEVICE=""
FUSE_DIR=""

# The EXIT trap: stops what this script started, then hands over to the
# lab's own cleanup (which removes $LAB_DIR, or keeps it on failure).
nbd_cleanup() {
    local status=$1
    set +e
    detach_block_device
    stop_server
    mountpoint -q "$TMPFS_DIR" && umount "$TMPFS_DIR"
    [[ -n $DISK_DIR ]] && rm -rf "$DISK_DIR"
    (exit "$status")
    lab_cleanup
}
trap 'nbd_cleanup $?' EXIT

# Builds replicad and haadm in release mode; sets REPLICAD and HAADM.
build_release() {
    local cargo target
    cargo=$(command -v cargo || echo "${HOME:-/root}/.cargo/bin/cargo")
    [[ -x $cargo ]] || lab_fail "cargo not found: install Rust (1.89 or newer) and run me again"
    (cd "$LAB_REPO" && "$cargo" build --release -q -p replicad -p haadm) ||
        lab_fail "cargo build --release -p replicad -p haadm failed in $LAB_REPO"
    target=${CARGO_TARGET_DIR:-$LAB_REPO/target}/release
    REPLICAD=$target/replicad
    HAADM=$target/haadm
}

# Succeeds once URI serves NBD clients.
export_ready() {
    nbdinfo --size "$1" >/dev/null 2>&1
}

# Succeeds once the control socket of replicad (haadm ARGS...) answers.
replicad_ready() {
    "$@" status >/dev/null 2>&1
}

# Starts SERVER on a new backing file of $backing_mib MiB in DIR; sets
# SERVER_PID and URI.
start_server() {
    local server=$1 dir=$2 backing socket
    backing=$dir/$server.img
    rm -f "$backing"
    fallocate -l "${backing_mib}MiB" "$backing"
    case $server in
        replicad)
            local config=$dir/replicad-config run=$dir/replicad-run
            rm -rf "$config" "$run"
            mkdir -p "$config" "$run"
            cat >"$config/r0.yaml" <<EOF
resource: r0
protocol: C
disk: {on-io-error: detach}
nodes:
  ha1: {address: "127.0.0.1:$PEER_PORT", disk: $backing, meta-disk: internal}
  ha2: {address: "127.0.0.2:$PEER_PORT", disk: $backing, meta-disk: internal}
EOF
            local haadm=("$HAADM" -c "$config" --node ha1 --run-dir "$run")
            "${haadm[@]}" create-md r0 >/dev/null
            RUST_LOG=warn "$REPLICAD" -c "$config" --node ha1 --run-dir "$run" \
                </dev/null >>"$LAB_DIR/replicad.log" 2>&1 &
            SERVER_PID=$!
            lab_poll "$SOCKET_TIMEOUT_MS" replicad_ready "${haadm[@]}" ||
                lab_fail "replicad did not start (see $LAB_DIR/replicad.log)"
            "${haadm[@]}" up r0
            "${haadm[@]}" primary r0 --force
            socket=$run/r0.nbd
            ;;
        nbdkit)
            socket=$dir/nbdkit.sock
            rm -f "$socket"
            nbdkit --foreground -U "$socket" file "$backing" </dev/null >>"$LAB_DIR/nbdkit.log" 2>&1 &
            SERVER_PID=$!
            ;;
    esac
    URI="nbd+unix:///?socket=$socket"
    lab_poll "$SOCKET_TIMEOUT_MS" export_ready "$URI" ||
        lab_fail "$server serves no NBD export on $socket within ${SOCKET_TIMEOUT_MS} ms (see the logs in $LAB_DIR)"
}

stop_server() {
    [[ -n $SERVER_PID ]] || return 0
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# Without fio's nbd engine: the export as a block device (nbdfuse, then a
# loop device); sets LOOP_DEVICE.
attach_block_device() {
    FUSE_DIR=$(mktemp -d "$LAB_DIR/fuse.XXXXXX")
    nbdfuse -P "$FUSE_DIR.pid" "$FUSE_DIR" "$URI" </dev/null >>"$LAB_DIR/nbdfuse.log" 2>&1 &
    lab_poll "$SOCKET_TIMEOUT_MS" test -s "$FUSE_DIR.pid" || lab_fail "nbdfuse did not mount $URI"
    LOOP_DEVICE=$(losetup --find --show --direct-io=on "$FUSE_DIR/nbd")
}

detach_block_device() {
    [[ -n $LOOP_DEVICE ]] && losetup -d "$LOOP_DEVICE"
    LOOP_DEVICE=""
    if [[ -n $FUSE_DIR ]]; then
        fusermount3 -u "$FUSE_DIR" 2>/dev/null || fusermount3 -u -z "$FUSE_DIR"
        rmdir "$FUSE_DIR" 2>/dev/null
        rm -f "$FUSE_DIR.pid"
    fi
    FUSE_DIR=""
}

# Runs one fio job against the started server; prints "MiB/s IOPS p99_us".
run_job() {
    local rw=$2 block_size=$3 iodepth=$4 output=$LAB_DIR/fio.json target
    if [[ $ENGINE == nbd ]]; then
        target=(--ioengine=nbd "--uri=$URI")
    else
        target=(--ioengine=libaio --direct=1 "--filename=$LOOP_DEVICE")
    fi
    fio --name="$1" "${target[@]}" --rw="$rw" --bs="$block_size" --iodepth="$iodepth" \
        --size="${job_mib}M" --runtime="$runtime" --time_based --randrepeat=0 \
        --output-format=json --output="$output" >/dev/null ||
        lab_fail "fio job $1 failed against $URI (see $output)"
    local direction=write
    [[ $rw == read ]] && direction="read"
    jq -r --arg d "$direction" '.jobs[0][$d] |
        "\(.bw_bytes / 1048576) \(.iops) \(.clat_ns.percentile["99.000000"] / 1000)"' "$output"
}

build_release
if [[ -z $ENGINE ]]; then
    ENGINE=libaio
    fio --enghelp 2>/dev/null | grep -qw nbd && ENGINE=nbd
fi
if [[ $ENGINE == nbd ]]; then
    echo "nbd.sh: $(fio --version) drives the exports with its nbd ioengine (libnbd)"
else
    lab_install_packages fuse3
    echo "nbd.sh: $(fio --version) drives the exports with libaio, O_DIRECT, on a loop device over nbdfuse"
fi
echo "nbd.sh: ${runtime} s per job, ${backing_mib} MiB backing files, jobs over ${job_mib} MiB"

mkdir -p "$TMPFS_DIR"
mount -t tmpfs -o "size=$((backing_mib + 64))M" hapair-bench "$TMPFS_DIR"
DISK_DIR=$(mktemp -d /var/tmp/hapair-bench-nbd.XXXXXX)

declare -A RESULT=()
for storage in "${STORAGES[@]}"; do
    dir=$TMPFS_DIR
    [[ $storage == disk ]] && dir=$DISK_DIR
    for server in "${SERVERS[@]}"; do
        start_server "$server" "$dir"
        [[ $ENGINE == nbd ]] || attach_block_device
        for job in "${JOBS[@]}"; do
            read -r name rw block_size iodepth <<<"$job"
            # Every job starts with nothing dirty and nothing cached.
            sync
            echo 1 >/proc/sys/vm/drop_caches
            RESULT[$storage,$server,$name]=$(run_job "$name" "$rw" "$block_size" "$iodepth")
            read -r mib iops p99 <<<"${RESULT[$storage,$server,$name]}"
            printf "nbd.sh: %-5s %-8s %-18s %8.1f MiB/s %8.0f IOPS  p99 %6.0f µs\n" \
                "$storage" "$server" "$name" "$mib" "$iops" "$p99"
        done
        detach_block_device
        stop_server
        rm -f "$dir/$server.img"
    done
done

# ratio A B: A/B with two decimals, "-" when B is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "-"; else printf "%.2f", a / b }'
}

echo
echo "fio engine: $ENGINE; ${runtime} s per job; ${backing_mib} MiB backing files; p99 = 99th percentile completion latency"
echo
echo "| storage | job | replicad MiB/s | nbdkit MiB/s | replicad IOPS | nbdkit IOPS | replicad p99 µs | nbdkit p99 µs | replicad/nbdkit |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for storage in "${STORAGES[@]}"; do
    for job in "${JOBS[@]}"; do
        read -r name _ <<<"$job"
        read -r r_mib r_iops r_p99 <<<"${RESULT[$storage,replicad,$name]}"
        read -r k_mib k_iops k_p99 <<<"${RESULT[$storage,nbdkit,$name]}"
        printf "| %s | %s | %.1f | %.1f | %.0f | %.0f | %.0f | %.0f | %s |\n" \
            "$storage" "$name" "$r_mib" "$k_mib" "$r_iops" "$k_iops" "$r_p99" "$k_p99" \
            "$(ratio "$r_mib" "$k_mib")"
    done
done
