#!/usr/bin/env bash
# nbd.sh: compares three NBD servers in the same run, on backing files of
# the same size, on tmpfs and on disk (a directory under /var/tmp):
#   replicated  a replicad pair, protocol C (or -P): ha1 (Primary, serving the
#               export) and ha2 each in a network namespace of their own
#               (scripts/lib/lab.sh), each with its own backing file;
#   replicad    one replicad node alone (StandAlone, internal metadata):
#               the same code without a peer;
#   nbdkit      the unreplicated baseline `nbdkit file`.
# Run as root on Debian or Ubuntu:
#
#     sudo scripts/bench/nbd.sh [-t SECONDS_PER_JOB] [-s BACKING_MIB] [-r RESYNC_MIB] [-e nbd|libaio]
#                               [-o STORAGE,...] [-S SERVER,...] [-j JOB,...] [-P A|B|C] [-p] [-T]
#                               [-d DISK_TIMEOUT]
#
# -d sets `disk-timeout` (tenths of a second) for both replicad servers:
# every request then goes through replicad's blocking threads, with a
# timer; this shows what that costs.
#
# -T keeps ha2's backing file on tmpfs whatever the storage, so that on
# disk the two hosts do not write into one file system (two real hosts
# never do; here both would otherwise share one ext4 on one disk).
#
# -p gives each simulated host a CPU of its own, as two real hosts have:
# ha1, the lone replicad, nbdkit, fio and the plain copy run on CPU 0, ha2
# on CPU 1 (taskset; the kernel's network and softirq work is not pinned).
# Without it, everything shares all CPUs, so the pair's peer competes with
# the Primary and fio for the CPUs that the node alone has to itself.
#
# -o, -S and -j narrow a run to some storages (tmpfs, disk), servers
# (replicated, replicad, nbdkit) and jobs (the fio jobs below by name, and
# `resync`), e.g. while working on one path; the tables then show "0.0"
# and "-" for what did not run. -P runs the pair with protocol A or B
# instead of C. The release build
# goes to $CARGO_TARGET_DIR when that is set (else target/).
#
# Jobs, each time-based, in this order on one fresh server and backing file
# per storage (page cache of the backing files dropped before each job): sequential 1 MiB writes then reads at iodepth 4, and 4 KiB
# random writes at iodepth 1 and 32, all over the same region. fio drives
# the export with its nbd ioengine (libnbd, over the Unix socket); if this
# fio lacks it, fio uses libaio with O_DIRECT on a loop device over nbdfuse
# for all servers instead (-e libaio forces that), and the output says
# so.
#
# Then, still on the replicated pair, the resync benchmark: ha2
# disconnects, fio writes RESYNC_MIB MiB on ha1, ha2 connects again, and
# the time from `haadm connect` until both nodes are UpToDate gives the
# resync rate; it is set against two plain copies of a file of the same
# size, each with an fsync at the end: `dd` to a second file on the same
# filesystem, and across the link (socat on ha1 reading the file into one
# TCP connection, socat on ha2 writing it beside ha2's backing file, in
# 1 MiB reads and writes), the path a resync takes. The pair's
# configuration sets `c-max-rate: 0` (no ceiling on the resync rate; the default caps it
# at 100 MiB/s) and `connect-int: 2` (ha1 retries the connection every
# 2 s instead of every 10 s; `timeout: 15`, 1.5 s, must be shorter).
#
# It ends with Markdown tables (MiB/s, IOPS, mean and p99 completion
# latency, ratios replicated/replicad and replicad/nbdkit; how busy the
# CPUs were during each job and the CPU time per MiB moved, from
# /proc/stat; resync against the copies); docs/BENCHMARKS.md explains the
# method and keeps results.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/lab.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lab.sh"

SERVERS=(replicated replicad nbdkit)
STORAGES=(tmpfs disk)
# "name rw block-size iodepth" per job, in the order they run.
JOBS=("seq-write-1M write 1M 4" "seq-read-1M read 1M 4" "rand-write-4K-qd1 randwrite 4k 1" "rand-write-4K-qd32 randwrite 4k 32")
SOCKET_TIMEOUT_MS=15000
# How long the pair may take to connect, or to resync after a reconnect.
SYNC_TIMEOUT_MS=120000
# The replication port in replicad's configuration. The lone node listens
# on loopback and its peer (127.0.0.2) never runs; the pair talks over the
# lab's bridge (10.99.0.1 and .2). Nothing leaves the host.
PEER_PORT=7789
RESOURCE=r0

usage() {
    echo "usage: $0 [-t SECONDS_PER_JOB] [-s BACKING_MIB] [-r RESYNC_MIB] [-e nbd|libaio] [-o STORAGE,...] [-S SERVER,...] [-j JOB,...] [-P A|B|C] [-p] [-T] [-d DISK_TIMEOUT]"
    echo "  defaults: 10 s, 1024 MiB, 256 MiB, fio's nbd engine when it has one, -o $(IFS=,; echo "${STORAGES[*]}"), -S $(IFS=,; echo "${SERVERS[*]}")," \
        "-j $(job_names | tr ' ' ','),resync, -P C, all CPUs shared (-p: one per host), ha2 on the storage (-T: on tmpfs), no disk-timeout; needs root"
}

# Prints the names of the jobs in JOBS.
job_names() {
    local job names=()
    for job in "${JOBS[@]}"; do
        names+=("${job%% *}")
    done
    echo "${names[*]}"
}

runtime=10
backing_mib=1024
resync_mib=256
ENGINE=""
# only_some LIST ALLOWED...: succeeds if every comma-separated item of LIST
# is one of ALLOWED.
only_some() {
    local item allowed_items=" ${*:2} "
    for item in ${1//,/ }; do
        [[ $allowed_items == *" $item "* ]] || return 1
    done
}

CPU_PER_HOST=no
HA2_ON_TMPFS=no
PROTOCOL=C
RUN_RESYNC=yes
DISK_OPTIONS="on-io-error: detach"
while getopts "t:s:r:e:o:S:j:P:pTd:h" option; do
    case $option in
        o)
            only_some "$OPTARG" "${STORAGES[@]}" || {
                echo "nbd.sh: -o takes storages among ${STORAGES[*]} (comma-separated), not '$OPTARG'" >&2
                exit 2
            }
            read -r -a STORAGES <<<"${OPTARG//,/ }"
            ;;
        S)
            only_some "$OPTARG" "${SERVERS[@]}" || {
                echo "nbd.sh: -S takes servers among ${SERVERS[*]} (comma-separated), not '$OPTARG'" >&2
                exit 2
            }
            read -r -a SERVERS <<<"${OPTARG//,/ }"
            ;;
        j)
            # shellcheck disable=SC2046 # the job names are single words
            only_some "$OPTARG" $(job_names) resync || {
                echo "nbd.sh: -j takes jobs among $(job_names) resync (comma-separated), not '$OPTARG'" >&2
                exit 2
            }
            [[ ",$OPTARG," == *,resync,* ]] || RUN_RESYNC=no
            chosen=()
            for job in "${JOBS[@]}"; do
                [[ ",$OPTARG," == *",${job%% *},"* ]] && chosen+=("$job")
            done
            JOBS=("${chosen[@]}")
            ;;
        P)
            [[ $OPTARG =~ ^[ABC]$ ]] || {
                echo "nbd.sh: -P takes the protocol A, B or C, not '$OPTARG'" >&2
                exit 2
            }
            PROTOCOL=$OPTARG
            ;;
        t) runtime=$OPTARG ;;
        s) backing_mib=$OPTARG ;;
        r) resync_mib=$OPTARG ;;
        e) ENGINE=$OPTARG ;;
        p) CPU_PER_HOST=yes ;;
        T) HA2_ON_TMPFS=yes ;;
        d)
            [[ $OPTARG =~ ^[1-9][0-9]*$ ]] || {
                echo "nbd.sh: -d takes disk-timeout in tenths of a second (1 or more), not '$OPTARG'" >&2
                exit 2
            }
            DISK_OPTIONS+=", disk-timeout: $OPTARG"
            ;;
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
if ! [[ $runtime =~ ^[1-9][0-9]*$ && $backing_mib =~ ^[1-9][0-9]*$ && $resync_mib =~ ^[1-9][0-9]*$ ]] ||
    ((backing_mib < 128 || resync_mib > backing_mib - 64)); then
    echo "nbd.sh: -t takes whole seconds (at least 1), -s whole MiB (at least 128) and -r whole MiB (at least 1, at most BACKING_MIB - 64)" >&2
    exit 2
fi
if [[ -n $ENGINE && $ENGINE != nbd && $ENGINE != libaio ]]; then
    echo "nbd.sh: -e takes nbd or libaio, not '$ENGINE'" >&2
    exit 2
fi
if [[ $CPU_PER_HOST == yes ]] && (($(nproc) < 2)); then
    echo "nbd.sh: -p needs two CPUs, this machine has $(nproc)" >&2
    exit 2
fi

# on_cpu HOST: sets PIN to the command prefix that runs a process on HOST's
# CPU with -p (ha2: CPU 1; ha1 and everything else: CPU 0); empty without.
on_cpu() {
    PIN=()
    if [[ $CPU_PER_HOST == yes ]]; then
        PIN=(taskset -c 0)
        [[ $1 == ha2 ]] && PIN=(taskset -c 1)
    fi
    return 0
}

# fio works on the same region for both servers: replicad's usable size is
# a little smaller than its backing file (the metadata is inside).
job_mib=$((backing_mib - 64))

lab_init nbd
[[ $(id -u) -eq 0 ]] || lab_fail "run me as root: network namespaces, tmpfs mounts (and loop devices, without fio's nbd engine) need it"
lab_install_packages fio nbdkit libnbd-bin jq util-linux iproute2 socat

# The replicad processes or the nbdkit process of the server under test.
SERVER_PIDS=()
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

# Writes DIR/r0.yaml: resource r0, protocol $PROTOCOL, the YAML lines EXTRA, ha1 at
# ADDRESS1 on DISK1, ha2 at ADDRESS2 on DISK2.
write_replicad_config() {
    local dir=$1 address1=$2 disk1=$3 address2=$4 disk2=$5 extra=$6
    rm -rf "$dir"
    mkdir -p "$dir"
    cat >"$dir/$RESOURCE.yaml" <<EOF
resource: $RESOURCE
protocol: $PROTOCOL
$extra
nodes:
  ha1: {address: "$address1:$PEER_PORT", disk: $disk1, meta-disk: internal}
  ha2: {address: "$address2:$PEER_PORT", disk: $disk2, meta-disk: internal}
EOF
}

# haadm ARGS... for NODE (ha1 or ha2) of the replicated pair.
pair_haadm() {
    local node=$1
    shift
    "$HAADM" -c "$PAIR_DIR/pair-config" --node "$node" --run-dir "$PAIR_DIR/$node-run" "$@"
}

# Succeeds if `jq -e FILTER` holds for the status of r0 on NODE.
pair_status_is() {
    pair_haadm "$1" status "$RESOURCE" --json 2>/dev/null | jq -e ".[0] | $2" >/dev/null 2>&1
}

# Prints peer.resynced_bytes of NODE: what it sent or received as resync
# since it started.
pair_resynced_bytes() {
    pair_haadm "$1" status "$RESOURCE" --json | jq '.[0].peer.resynced_bytes'
}

IN_SYNC='.disk == "UpToDate" and .peer.connection == "Connected" and .peer.disk == "UpToDate" and .peer.replication == "Established"'
CONNECTED='.peer.connection == "Connected" and .peer.replication == "Established"'

# Succeeds if both nodes are UpToDate, connected, with nothing to resync.
pair_in_sync() {
    pair_status_is ha1 "$IN_SYNC" && pair_status_is ha2 "$IN_SYNC"
}

# Succeeds if both nodes see the connection established (not resyncing).
pair_connected() {
    pair_status_is ha1 "$CONNECTED" && pair_status_is ha2 "$CONNECTED"
}

# Starts the replicated pair in DIR: ha1 in the lab's namespace ha1, ha2 in
# ha2, each on a new backing file (ha2's on tmpfs with -T); skips the
# initial sync (blank disks) and promotes ha1; sets PAIR_DIR and
# SERVER_PIDS.
start_pair() {
    local dir=$1 node ha2_dir=$1
    [[ $HA2_ON_TMPFS == yes ]] && ha2_dir=$TMPFS_DIR
    PAIR_DIR=$dir
    write_replicad_config "$dir/pair-config" \
        "${LAB_ADDRESS[ha1]}" "$dir/ha1.img" "${LAB_ADDRESS[ha2]}" "$ha2_dir/ha2.img" \
        "net: {connect-int: 2, timeout: 15}
disk: {$DISK_OPTIONS, c-max-rate: 0}"
    for node in ha1 ha2; do
        local image=$dir/ha1.img
        [[ $node == ha2 ]] && image=$ha2_dir/ha2.img
        rm -rf "$image" "$dir/$node-run"
        mkdir -p "$dir/$node-run"
        fallocate -l "${backing_mib}MiB" "$image"
        pair_haadm "$node" create-md "$RESOURCE" >/dev/null
        on_cpu "$node"
        lab_spawn "$node" "$LAB_DIR/$node-replicad.log" "${PIN[@]}" env RUST_LOG=warn "$REPLICAD" \
            -c "$dir/pair-config" --node "$node" --run-dir "$dir/$node-run"
        SERVER_PIDS+=("$LAB_PID")
        lab_poll "$SOCKET_TIMEOUT_MS" replicad_ready pair_haadm "$node" ||
            lab_fail "replicad $node did not start (see $LAB_DIR/$node-replicad.log)"
    done
    for node in ha1 ha2; do
        pair_haadm "$node" up "$RESOURCE"
    done
    lab_poll "$SYNC_TIMEOUT_MS" pair_connected ||
        lab_fail "the pair did not connect within $((SYNC_TIMEOUT_MS / 1000)) s (see the logs in $LAB_DIR)"
    pair_haadm ha1 new-current-uuid --clear-bitmap "$RESOURCE" >/dev/null
    lab_poll "$SYNC_TIMEOUT_MS" pair_in_sync ||
        lab_fail "new-current-uuid --clear-bitmap did not leave both nodes UpToDate"
    pair_haadm ha1 primary "$RESOURCE"
}

# Starts SERVER with new backing files of $backing_mib MiB in DIR; sets
# SERVER_PIDS and URI.
start_server() {
    local server=$1 dir=$2 socket backing
    case $server in
        replicated)
            start_pair "$dir"
            socket=$dir/ha1-run/$RESOURCE.nbd
            ;;
        replicad)
            local config=$dir/replicad-config run=$dir/replicad-run
            backing=$dir/replicad.img
            rm -rf "$backing" "$run"
            mkdir -p "$run"
            fallocate -l "${backing_mib}MiB" "$backing"
            write_replicad_config "$config" 127.0.0.1 "$backing" 127.0.0.2 "$backing" \
                "disk: {$DISK_OPTIONS}"
            local haadm=("$HAADM" -c "$config" --node ha1 --run-dir "$run")
            "${haadm[@]}" create-md "$RESOURCE" >/dev/null
            on_cpu ha1
            RUST_LOG=warn "${PIN[@]}" "$REPLICAD" -c "$config" --node ha1 --run-dir "$run" \
                </dev/null >>"$LAB_DIR/replicad.log" 2>&1 &
            SERVER_PIDS+=("$!")
            lab_poll "$SOCKET_TIMEOUT_MS" replicad_ready "${haadm[@]}" ||
                lab_fail "replicad did not start (see $LAB_DIR/replicad.log)"
            "${haadm[@]}" up "$RESOURCE"
            "${haadm[@]}" primary "$RESOURCE" --force
            socket=$run/$RESOURCE.nbd
            ;;
        nbdkit)
            backing=$dir/nbdkit.img
            rm -f "$backing"
            fallocate -l "${backing_mib}MiB" "$backing"
            socket=$dir/nbdkit.sock
            rm -f "$socket"
            on_cpu ha1
            "${PIN[@]}" nbdkit --foreground -U "$socket" file "$backing" </dev/null >>"$LAB_DIR/nbdkit.log" 2>&1 &
            SERVER_PIDS+=("$!")
            ;;
    esac
    URI="nbd+unix:///?socket=$socket"
    lab_poll "$SOCKET_TIMEOUT_MS" export_ready "$URI" ||
        lab_fail "$server serves no NBD export on $socket within ${SOCKET_TIMEOUT_MS} ms (see the logs in $LAB_DIR)"
}

# Stops the server under test (SIGTERM, then waits for it).
stop_server() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVER_PIDS=()
}

# Without fio's nbd engine: the export as a block device (nbdfuse, then a
# loop device); sets LOOP_DEVICE.
attach_block_device() {
    FUSE_DIR=$(mktemp -d "$LAB_DIR/fuse.XXXXXX")
    on_cpu ha1
    "${PIN[@]}" nbdfuse -P "$FUSE_DIR.pid" "$FUSE_DIR" "$URI" </dev/null >>"$LAB_DIR/nbdfuse.log" 2>&1 &
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

# Sets FIO_TARGET to fio's options reaching the started server's export.
set_fio_target() {
    if [[ $ENGINE == nbd ]]; then
        FIO_TARGET=(--ioengine=nbd "--uri=$URI")
    else
        FIO_TARGET=(--ioengine=libaio --direct=1 "--filename=$LOOP_DEVICE")
    fi
}

# Runs one fio job against the started server; prints
# "MiB/s IOPS mean_us p99_us" (completion latency).
run_job() {
    local rw=$2 block_size=$3 iodepth=$4 output=$LAB_DIR/fio.json cpu_before
    set_fio_target
    on_cpu ha1
    cpu_before=$(cpu_jiffies)
    "${PIN[@]}" fio --name="$1" "${FIO_TARGET[@]}" --rw="$rw" --bs="$block_size" --iodepth="$iodepth" \
        --size="${job_mib}M" --runtime="$runtime" --time_based --randrepeat=0 \
        --output-format=json --output="$output" >/dev/null ||
        lab_fail "fio job $1 failed against $URI (see $output)"
    local direction=write
    [[ $rw == read ]] && direction="read"
    local cpu_after moved_mib
    cpu_after=$(cpu_jiffies)
    moved_mib=$(jq -r --arg d "$direction" '.jobs[0][$d].io_bytes / 1048576' "$output")
    jq -r --arg d "$direction" '.jobs[0][$d] |
        "\(.bw_bytes / 1048576) \(.iops) \(.clat_ns.mean / 1000) \(.clat_ns.percentile["99.000000"] / 1000)"' \
        "$output" | tr '\n' ' '
    cpu_use "$cpu_before" "$cpu_after" "$moved_mib"
}

# The machine's CPU time so far, in clock ticks: "busy total" (busy:
# user, nice, system, irq, softirq and steal; total adds idle and iowait),
# from the first line of /proc/stat.
cpu_jiffies() {
    awk '/^cpu / { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6 }' /proc/stat
}

# cpu_use "BUSY TOTAL" "BUSY TOTAL" MIB: between the two readings, the
# share of all CPUs that was busy (%) and the CPU time per MiB moved (ms),
# all processes and the kernel together.
cpu_use() {
    local tick
    tick=$(getconf CLK_TCK)
    awk -v before="$1" -v after="$2" -v mib="$3" -v tick="$tick" 'BEGIN {
        split(before, b, " "); split(after, a, " ")
        busy = a[1] - b[1]; total = a[2] - b[2]; share = 0; per_mib = 0
        if (total > 0) share = 100 * busy / total
        if (mib > 0) per_mib = busy * 1000 / tick / mib
        printf "%.0f %.2f\n", share, per_mib
    }'
}

# settle DIR: writes out what is dirty on DIR's filesystem and drops the
# files of DIR (not below) from the page cache. Only DIR's filesystem: a
# global `sync` or drop_caches waits for every mount of the machine, and
# hangs while another job holds one (a stuck FUSE or NBD mount).
settle() {
    local file
    sync -f "$1"
    for file in "$1"/*; do
        [[ -f $file ]] && dd if="$file" iflag=nocache count=0 status=none
    done
    return 0
}

# ratio A B: A/B with two decimals, "-" when B is 0.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "-"; else printf "%.2f", a / b }'
}

# mib_per_s MIB MS: MIB MiB in MS milliseconds, as MiB/s with one decimal.
mib_per_s() {
    awk -v m="$1" -v t="$2" 'BEGIN { if (t + 0 == 0) print "-"; else printf "%.1f", m * 1000 / t }'
}

# Succeeds if ha1 no longer sees ha2 connected.
ha1_alone() {
    ! pair_status_is ha1 '.peer.connection == "Connected"'
}

# The resync benchmark on the started, synced pair in DIR; prints
# "connect_ms resync_ms crossed_bytes copy_ms net_copy_ms": the time from
# `haadm connect` until both nodes are connected (handshake done), and
# until both are UpToDate; the bytes ha1 sent as resync; the time of a
# plain copy of the same amount on ha1's filesystem, and across the link
# to ha2's.
run_resync() {
    local dir=$1 before after started connected
    lab_poll "$SYNC_TIMEOUT_MS" pair_in_sync || lab_fail "the pair is not in sync before the resync benchmark"
    before=$(pair_resynced_bytes ha1)
    pair_haadm ha2 disconnect "$RESOURCE"
    lab_poll "$SOCKET_TIMEOUT_MS" ha1_alone || lab_fail "ha1 still sees ha2 connected after haadm disconnect on ha2"
    set_fio_target
    on_cpu ha1
    "${PIN[@]}" fio --name=dirty "${FIO_TARGET[@]}" --rw=write --bs=1M --iodepth=4 --size="${resync_mib}M" \
        --output-format=json --output="$LAB_DIR/dirty.json" >/dev/null ||
        lab_fail "fio could not write ${resync_mib} MiB on the disconnected ha1 (see $LAB_DIR/dirty.json)"
    settle "$dir"
    started=${EPOCHREALTIME/[.,]/}
    pair_haadm ha2 connect "$RESOURCE"
    lab_poll "$SYNC_TIMEOUT_MS" pair_status_is ha2 '.peer.connection == "Connected"' ||
        lab_fail "ha2 did not connect again within $((SYNC_TIMEOUT_MS / 1000)) s"
    connected=$LAB_SEEN_US
    lab_poll "$SYNC_TIMEOUT_MS" pair_in_sync ||
        lab_fail "the resync of ${resync_mib} MiB did not end within $((SYNC_TIMEOUT_MS / 1000)) s"
    after=$(pair_resynced_bytes ha1)
    local resynced_us=$LAB_SEEN_US
    # The plain copy: a file of the same size on the same filesystem, read
    # from disk (caches dropped) and written out with an fsync at the end.
    dd if=/dev/urandom of="$dir/copy-source" bs=1M count="$resync_mib" status=none
    settle "$dir"
    local copy_started=${EPOCHREALTIME/[.,]/}
    on_cpu ha1
    "${PIN[@]}" dd if="$dir/copy-source" of="$dir/copy-target" bs=1M conv=fsync status=none
    local copied=${EPOCHREALTIME/[.,]/}
    rm -f "$dir/copy-target"
    local net_copy_ms
    net_copy_ms=$(copy_across "$dir/copy-source")
    rm -f "$dir/copy-source"
    echo "$(lab_ms_between "$started" "$connected") $(lab_ms_between "$started" "$resynced_us")" \
        "$((after - before)) $(lab_ms_between "$copy_started" "$copied") $net_copy_ms"
}

# Succeeds once something listens on TCP port PORT in HOST's namespace.
listening() {
    ip netns exec "${LAB_NAMESPACE[$1]}" ss -Hltn "sport = :$2" | grep -q .
}

# copy_across SOURCE: copies SOURCE (on ha1's filesystem, not cached) over
# one TCP connection from ha1's namespace to a file beside ha2's backing
# file, as the resync moves data (file to socket, socket to file), and
# makes it durable there; prints the milliseconds that took.
copy_across() {
    local source=$1 target=$PAIR_DIR/net-copy-target port=7790 receiver
    [[ $HA2_ON_TMPFS == yes ]] && target=$TMPFS_DIR/net-copy-target
    settle "$(dirname "$source")"
    on_cpu ha2
    lab_spawn ha2 "$LAB_DIR/net-copy.log" "${PIN[@]}" socat -b 1048576 -u "TCP-LISTEN:$port,reuseaddr" \
        "OPEN:$target,creat,trunc"
    receiver=$LAB_PID
    lab_poll "$SOCKET_TIMEOUT_MS" listening ha2 "$port" ||
        lab_fail "socat did not listen on ha2 (see $LAB_DIR/net-copy.log)"
    local started=${EPOCHREALTIME/[.,]/}
    on_cpu ha1
    ip netns exec "${LAB_NAMESPACE[ha1]}" "${PIN[@]}" socat -b 1048576 -u "OPEN:$source" \
        "TCP:${LAB_ADDRESS[ha2]}:$port" ||
        lab_fail "socat could not send the copy to ha2 (see $LAB_DIR/net-copy.log)"
    wait "$receiver" || lab_fail "socat on ha2 failed (see $LAB_DIR/net-copy.log)"
    sync "$target"
    local copied=${EPOCHREALTIME/[.,]/}
    [[ $(stat -c %s "$target") == $(stat -c %s "$source") ]] ||
        lab_fail "the copy across the link is incomplete (see $LAB_DIR/net-copy.log)"
    rm -f "$target"
    lab_ms_between "$started" "$copied"
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
CPUS="all CPUs shared"
[[ $CPU_PER_HOST == yes ]] && CPUS="one CPU per host (ha2 on CPU 1, the rest on CPU 0)"
[[ $HA2_ON_TMPFS == yes ]] && CPUS+="; ha2's backing file on tmpfs"
[[ $DISK_OPTIONS == *disk-timeout* ]] && CPUS+="; replicad with ${DISK_OPTIONS#*, }"
echo "nbd.sh: ${runtime} s per job, ${backing_mib} MiB backing files, jobs over ${job_mib} MiB, resync of ${resync_mib} MiB, $CPUS"

lab_up ha1 ha2
mkdir -p "$TMPFS_DIR"
# Room for the pair's two backing files and the copy's two files.
mount -t tmpfs -o "size=$((2 * backing_mib + 2 * resync_mib + 64))M" hapair-bench "$TMPFS_DIR"
DISK_DIR=$(mktemp -d /var/tmp/hapair-bench-nbd.XXXXXX)

declare -A RESULT=() RESYNC=()
for storage in "${STORAGES[@]}"; do
    dir=$TMPFS_DIR
    [[ $storage == disk ]] && dir=$DISK_DIR
    for server in "${SERVERS[@]}"; do
        start_server "$server" "$dir"
        [[ $ENGINE == nbd ]] || attach_block_device
        for job in "${JOBS[@]}"; do
            read -r name rw block_size iodepth <<<"$job"
            # Every job starts with nothing dirty and nothing cached.
            settle "$dir"
            RESULT[$storage,$server,$name]=$(run_job "$name" "$rw" "$block_size" "$iodepth")
            read -r mib iops mean p99 busy cpu_ms <<<"${RESULT[$storage,$server,$name]}"
            printf "nbd.sh: %-5s %-10s %-18s %8.1f MiB/s %8.0f IOPS  mean %6.0f µs  p99 %6.0f µs  CPUs %3d%% busy, %5.2f CPU-ms/MiB\n" \
                "$storage" "$server" "$name" "$mib" "$iops" "$mean" "$p99" "$busy" "$cpu_ms"
        done
        if [[ $server == replicated && $RUN_RESYNC == yes ]]; then
            RESYNC[$storage]=$(run_resync "$dir")
            read -r connect_ms resync_ms crossed copy_ms net_copy_ms <<<"${RESYNC[$storage]:-}"
            echo "nbd.sh: $storage resync of ${resync_mib} MiB: connected after $connect_ms ms," \
                "both UpToDate after $resync_ms ms, $crossed bytes resynced; plain copy $copy_ms ms," \
                "across the link $net_copy_ms ms"
        fi
        detach_block_device
        stop_server
        rm -f "$dir"/{ha1,ha2,replicad,nbdkit}.img "$TMPFS_DIR/ha2.img"
    done
done

echo
echo "fio engine: $ENGINE; ${runtime} s per job; ${backing_mib} MiB backing files;" \
    "latency = completion latency (mean, 99th percentile);" \
    "repl = replicated pair (protocol $PROTOCOL, two namespaces), alone = replicad without peer; $CPUS"
echo
echo "| storage | job | repl MiB/s | alone MiB/s | nbdkit MiB/s | repl IOPS | alone IOPS | nbdkit IOPS | repl/alone | alone/nbdkit |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for storage in "${STORAGES[@]}"; do
    for job in "${JOBS[@]}"; do
        read -r name _ <<<"$job"
        read -r p_mib p_iops _ <<<"${RESULT[$storage,replicated,$name]:-}"
        read -r r_mib r_iops _ <<<"${RESULT[$storage,replicad,$name]:-}"
        read -r k_mib k_iops _ <<<"${RESULT[$storage,nbdkit,$name]:-}"
        printf "| %s | %s | %.1f | %.1f | %.1f | %.0f | %.0f | %.0f | %s | %s |\n" \
            "$storage" "$name" "$p_mib" "$r_mib" "$k_mib" "$p_iops" "$r_iops" "$k_iops" \
            "$(ratio "$p_mib" "$r_mib")" "$(ratio "$r_mib" "$k_mib")"
    done
done
echo
echo "| storage | job | repl mean µs | alone mean µs | nbdkit mean µs | repl p99 µs | alone p99 µs | nbdkit p99 µs | repl/alone mean | repl/alone p99 |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for storage in "${STORAGES[@]}"; do
    for job in "${JOBS[@]}"; do
        read -r name rw _ <<<"$job"
        [[ $rw == randwrite ]] || continue
        read -r _ _ p_mean p_p99 _ <<<"${RESULT[$storage,replicated,$name]:-}"
        read -r _ _ r_mean r_p99 _ <<<"${RESULT[$storage,replicad,$name]:-}"
        read -r _ _ k_mean k_p99 _ <<<"${RESULT[$storage,nbdkit,$name]:-}"
        printf "| %s | %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %s | %s |\n" \
            "$storage" "$name" "$p_mean" "$r_mean" "$k_mean" "$p_p99" "$r_p99" "$k_p99" \
            "$(ratio "$p_mean" "$r_mean")" "$(ratio "$p_p99" "$r_p99")"
    done
done
echo
echo "CPU: the share of all CPUs busy during the job, and the CPU time per MiB moved (every process and the kernel)"
echo
echo "| storage | job | repl busy % | alone busy % | nbdkit busy % | repl CPU-ms/MiB | alone CPU-ms/MiB | nbdkit CPU-ms/MiB | repl/alone CPU per MiB |"
echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
for storage in "${STORAGES[@]}"; do
    for job in "${JOBS[@]}"; do
        read -r name _ <<<"$job"
        read -r _ _ _ _ p_busy p_cpu <<<"${RESULT[$storage,replicated,$name]:-}"
        read -r _ _ _ _ r_busy r_cpu <<<"${RESULT[$storage,replicad,$name]:-}"
        read -r _ _ _ _ k_busy k_cpu <<<"${RESULT[$storage,nbdkit,$name]:-}"
        printf "| %s | %s | %.0f | %.0f | %.0f | %.2f | %.2f | %.2f | %s |\n" \
            "$storage" "$name" "$p_busy" "$r_busy" "$k_busy" "$p_cpu" "$r_cpu" "$k_cpu" "$(ratio "$p_cpu" "$r_cpu")"
    done
done
if ((${#RESYNC[@]} > 0)); then
    echo
    echo "Resync of ${resync_mib} MiB written on ha1 while ha2 was disconnected (c-max-rate: 0, connect-int: 2);" \
        "time from \`haadm connect\` on ha2 until both UpToDate; copy = dd of a ${resync_mib} MiB file, fsync at the end;" \
        "link copy = the same file from ha1 to ha2 over one TCP connection (socat), fsync at the end"
    echo
    echo "(resync MiB/s counts from \`haadm connect\`, handshake included; \"after connect\" from the moment both are connected)"
    echo
    echo "| storage | connected ms | UpToDate ms | resync MiB/s | after connect MiB/s | bytes resynced / dirtied | copy MiB/s | link copy MiB/s | resync/copy | after connect/copy | after connect/link copy |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for storage in "${STORAGES[@]}"; do
        read -r connect_ms resync_ms crossed copy_ms net_copy_ms <<<"${RESYNC[$storage]:-}"
        printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n" "$storage" "$connect_ms" "$resync_ms" \
            "$(mib_per_s "$resync_mib" "$resync_ms")" "$(mib_per_s "$resync_mib" $((resync_ms - connect_ms)))" \
            "$(ratio "$crossed" $((resync_mib << 20)))" "$(mib_per_s "$resync_mib" "$copy_ms")" \
            "$(mib_per_s "$resync_mib" "$net_copy_ms")" "$(ratio "$copy_ms" "$resync_ms")" \
            "$(ratio "$copy_ms" $((resync_ms - connect_ms)))" "$(ratio "$net_copy_ms" $((resync_ms - connect_ms)))"
    done
fi
