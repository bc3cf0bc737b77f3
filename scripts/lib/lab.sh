# shellcheck shell=bash
# lab.sh: the network-namespace lab shared by scripts/demo.sh and the
# benchmarks under scripts/bench/. Source it; do not run it.
#
# The lab is a small LAN built out of network namespaces: one "switch"
# namespace holding a bridge, and one namespace per host, each joined to the
# bridge by a veth pair whose host end is called eth0. Host number i (1, 2,
# ...) gets 10.99.0.i/24 and fd99::i/64. The root namespace only sees the
# veths for the moment between their creation and their move into the
# switch; no address, route or traffic touches it.
#
# Namespace names carry the pid of the script, so several labs can coexist.
# lab_init installs a trap that, on any exit (success, failure, Ctrl-C),
# kills every process left in the lab's namespaces, deletes the namespaces
# and removes the scratch directory (kept, with the daemons' log tails
# printed, when the script fails).
#
# Functions, in the order a script uses them:
#   lab_init NAME                 trap, scratch dir, lab lock
#   lab_require_root
#   lab_install_packages PKG...   apt-get install the missing ones
#   lab_build_vrrpd               cargo build --release; sets LAB_VRRPD
#   lab_build_all                 the same for every program; sets LAB_BIN
#   lab_up HOST...                the switch and one namespace per host
#   lab_write_vrrpd_config ...    one YAML file for both hosts
#   lab_spawn HOST LOG CMD...     start CMD in HOST's namespace; sets LAB_PID
#   lab_spawn_vrrpd HOST CONFIG   the same for vrrpd
#   lab_poll TIMEOUT_MS CMD...    wait for CMD to succeed; sets LAB_SEEN_US
#   lab_holds_address HOST ADDR, lab_remove_address HOST ADDR/LEN
#   lab_holds_vip HOST, lab_sole_vip_holder HOST OTHER
#   lab_wait_exit TIMEOUT_MS PID..., lab_signal_and_wait SIGNAL TIMEOUT_MS PID...
#   lab_host_pids HOST, lab_memory_kib VmRSS|RssAnon|Pss PID...
#   lab_kill_host HOST, lab_loop_devices PID
#   lab_now_us, lab_ms_between FROM_US TO_US, lab_fail MESSAGE
# and for the whole storage service (see its section below):
#   lab_storage_config, lab_storage_init, lab_storage_start_replicad,
#   lab_storage_start_vrrpd, lab_haadm, lab_storage_in_sync,
#   lab_storage_is_primary, lab_storage_is_mounted, lab_storage_http_answers,
#   lab_storage_failover_timeline

# The lab's fixed addressing and virtual router.
LAB_SUBNET_PREFIX=10.99.0
LAB_VIP=10.99.0.100
LAB_VIP_LEN=24
LAB_VRID=51
LAB_INSTANCE=VI_1

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
LAB_PREFIX="hp$$"
LAB_SWITCH="${LAB_PREFIX}-sw"
LAB_SCRIPT=lab
LAB_DIR=""
LAB_HOSTS=()
LAB_LOGS=()
declare -A LAB_NAMESPACE=()
declare -A LAB_ADDRESS=()
# Results of lab_spawn, lab_poll and lab_wait_exit, read by the sourcing
# script (hence the SC2034 "unused" notes where they are set).
LAB_PID="" LAB_SEEN_US="" LAB_EXIT_STATUS=""

# Prints MESSAGE as an error of the calling script and exits 1 (the trap
# then cleans up).
lab_fail() {
    printf '%s: error: %s\n' "$LAB_SCRIPT" "$*" >&2
    exit 1
}

# Sets the script name used in messages, the traps, the scratch directory,
# and takes the lab lock (/run/lock/hapair-lab.lock, or $HAPAIR_LAB_LOCK) so
# that two timing-sensitive runs (demo, benchmarks) do not share the CPU.
lab_init() {
    LAB_SCRIPT=$1
    # Under `set -e` a failing command ends the script silently: say which.
    set -E
    trap 'lab_fail "${BASH_SOURCE[0]#"$LAB_REPO"/} line $LINENO: \`$BASH_COMMAND\` failed with status $?"' ERR
    trap lab_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM HUP
    LAB_DIR=$(mktemp -d "/tmp/hapair-${LAB_SCRIPT}.XXXXXX")
    # A FIFO nobody writes to: `read -t` on it sleeps without forking.
    mkfifo "$LAB_DIR/.tick"
    exec {LAB_TICK_FD}<>"$LAB_DIR/.tick"
    local lock=${HAPAIR_LAB_LOCK:-/run/lock/hapair-lab.lock}
    if [[ -w $(dirname "$lock") ]]; then
        exec {LAB_LOCK_FD}>"$lock"
        if ! flock -n "$LAB_LOCK_FD"; then
            echo "$LAB_SCRIPT: another lab run holds $lock; waiting for it (at most 15 min)..."
            flock -w 900 "$LAB_LOCK_FD" ||
                lab_fail "$lock is still locked after 15 min; is a test or benchmark stuck? (see: fuser $lock)"
        fi
    fi
}

lab_require_root() {
    [[ $(id -u) -eq 0 ]] ||
        lab_fail "run me as root: network namespaces need it (e.g. sudo $0)"
}

# Installs the Debian packages among PKG... that are not installed yet;
# runs apt-get update first, and only when something is missing.
lab_install_packages() {
    local package missing=()
    for package in "$@"; do
        if [[ $(dpkg-query -W -f='${Status}' "$package" 2>/dev/null) != "install ok installed" ]]; then
            missing+=("$package")
        fi
    done
    ((${#missing[@]})) || return 0
    echo "$LAB_SCRIPT: installing the missing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q || lab_fail "apt-get update failed; check the network and /etc/apt/sources.list"
    apt-get install -y -q --no-install-recommends "${missing[@]}" ||
        lab_fail "apt-get install ${missing[*]} failed; install them by hand and run me again"
}

# Finds cargo: in PATH, or in the invoking user's ~/.cargo/bin (sudo
# resets PATH); sets LAB_CARGO.
lab_find_cargo() {
    LAB_CARGO=$(command -v cargo || true)
    if [[ -z $LAB_CARGO ]]; then
        local home
        for home in "$HOME" "$(getent passwd "${SUDO_USER:-root}" | cut -d: -f6)"; do
            if [[ -x $home/.cargo/bin/cargo ]]; then
                LAB_CARGO=$home/.cargo/bin/cargo
                break
            fi
        done
    fi
    [[ -n $LAB_CARGO ]] ||
        lab_fail "cargo not found: install Rust (1.89 or newer) from https://rustup.rs and run me again"
}

# Builds vrrpd in release mode from the repository holding this script and
# sets LAB_VRRPD to the binary.
lab_build_vrrpd() {
    lab_find_cargo
    (cd "$LAB_REPO" && "$LAB_CARGO" build --release -p vrrpd) ||
        lab_fail "cargo build --release -p vrrpd failed in $LAB_REPO (see the compiler output above)"
    LAB_VRRPD=${CARGO_TARGET_DIR:-$LAB_REPO/target}/release/vrrpd
    [[ -x $LAB_VRRPD ]] || lab_fail "the build succeeded but $LAB_VRRPD is missing"
}

# Builds every program of hapair (vrrpd, replicad, haadm, hookrun) in
# release mode and sets LAB_BIN to their directory, LAB_VRRPD to vrrpd.
# With HAPAIR_BIN_DIR set, uses the programs there and builds nothing (the
# lab test that runs the demo passes its own build).
lab_build_all() {
    if [[ -n ${HAPAIR_BIN_DIR:-} ]]; then
        LAB_BIN=$HAPAIR_BIN_DIR
    else
        lab_find_cargo
        (cd "$LAB_REPO" && "$LAB_CARGO" build --release -p vrrpd -p replicad -p haadm -p hookrun) ||
            lab_fail "cargo build --release failed in $LAB_REPO (see the compiler output above)"
        LAB_BIN=${CARGO_TARGET_DIR:-$LAB_REPO/target}/release
    fi
    local program
    for program in vrrpd replicad haadm hookrun; do
        [[ -x $LAB_BIN/$program ]] || lab_fail "$LAB_BIN/$program is missing (build it: cargo build --release)"
    done
    LAB_VRRPD=$LAB_BIN/vrrpd
}

# Creates the switch and one namespace per HOST; the first host gets
# 10.99.0.1 and fd99::1, the second .2, and so on.
lab_up() {
    ip netns add "$LAB_SWITCH" || lab_fail "cannot create the network namespace $LAB_SWITCH"
    ip -n "$LAB_SWITCH" link add br0 type bridge
    ip -n "$LAB_SWITCH" link set br0 up
    local host number=0 namespace veth
    for host in "$@"; do
        number=$((number + 1))
        namespace="${LAB_PREFIX}-${host}"
        veth="${LAB_PREFIX}v${number}"
        ip netns add "$namespace" || lab_fail "cannot create the network namespace $namespace"
        LAB_HOSTS+=("$host")
        LAB_NAMESPACE[$host]=$namespace
        LAB_ADDRESS[$host]="${LAB_SUBNET_PREFIX}.${number}"
        # No duplicate address detection: addresses are usable at once.
        ip netns exec "$namespace" sh -c \
            'echo 0 >/proc/sys/net/ipv6/conf/all/accept_dad; echo 0 >/proc/sys/net/ipv6/conf/default/accept_dad'
        ip link add "$veth" type veth peer name eth0 netns "$namespace"
        ip link set "$veth" netns "$LAB_SWITCH"
        ip -n "$LAB_SWITCH" link set "$veth" master br0 up
        ip -n "$namespace" addr add "${LAB_ADDRESS[$host]}/24" dev eth0
        ip -n "$namespace" addr add "fd99::${number}/64" dev eth0 nodad
        ip -n "$namespace" link set lo up
        ip -n "$namespace" link set eth0 up
    done
}

# Writes FILE: one vrrpd configuration for both hosts (vrrpd picks its
# node's entry under `nodes:`), one instance on eth0 holding the lab's VIP.
# Usage: lab_write_vrrpd_config FILE VERSION ADVERT_INT HOST=PRIORITY...
lab_write_vrrpd_config() {
    local file=$1 version=$2 advert_int=$3
    shift 3
    {
        echo "# The same file on every host: each vrrpd takes its priority from"
        echo "# its own entry under nodes: (chosen with --node)."
        echo "instances:"
        echo "  - name: $LAB_INSTANCE"
        echo "    interface: eth0"
        echo "    virtual_router_id: $LAB_VRID"
        echo "    version: $version"
        echo "    advert_int: $advert_int"
        echo "    virtual_ipaddress: [$LAB_VIP/$LAB_VIP_LEN]"
        echo "    nodes:"
        local entry
        for entry in "$@"; do
            echo "      ${entry%%=*}: {priority: ${entry#*=}}"
        done
    } >"$file"
}

# Starts CMD... in HOST's namespace, in the background, with its output in
# LOG; sets LAB_PID to its pid (`ip netns exec` execs CMD, so this is CMD's
# own pid).
lab_spawn() {
    local host=$1 log=$2
    shift 2
    [[ " ${LAB_LOGS[*]} " == *" $log "* ]] || LAB_LOGS+=("$log")
    ip netns exec "${LAB_NAMESPACE[$host]}" "$@" </dev/null >>"$log" 2>&1 &
    # shellcheck disable=SC2034
    LAB_PID=$!
}

# Starts vrrpd on HOST with CONFIG (as node HOST), its run directory in
# $LAB_DIR/HOST/run and its log in $LAB_DIR/HOST/vrrpd.log; sets LAB_PID.
lab_spawn_vrrpd() {
    mkdir -p "$LAB_DIR/$1/run"
    lab_spawn "$1" "$LAB_DIR/$1/vrrpd.log" \
        "$LAB_VRRPD" -f "$2" --node "$1" --run-dir "$LAB_DIR/$1/run"
}

# Prints the microseconds since the epoch ($EPOCHREALTIME). Where a fork
# would matter, read ${EPOCHREALTIME/[.,]/} directly instead.
lab_now_us() {
    local now=${EPOCHREALTIME/[.,]/}
    echo "$now"
}

# Prints the whole milliseconds from FROM_US to TO_US.
lab_ms_between() {
    echo $((($2 - $1) / 1000))
}

# Runs CMD... every ~10 ms until it succeeds (returns 0, with LAB_SEEN_US set
# to the moment it first did) or TIMEOUT_MS passed (returns 1).
lab_poll() {
    local timeout_ms=$1
    shift
    local start=${EPOCHREALTIME/[.,]/} now
    while true; do
        if "$@"; then
            # shellcheck disable=SC2034
            LAB_SEEN_US=${EPOCHREALTIME/[.,]/}
            return 0
        fi
        now=${EPOCHREALTIME/[.,]/}
        ((now - start < timeout_ms * 1000)) || return 1
        read -r -t 0.01 -u "$LAB_TICK_FD" _ || true
    done
}

# Succeeds if HOST's eth0 holds the IP address ADDR (no prefix length).
lab_holds_address() {
    local addresses
    addresses=$(ip -n "${LAB_NAMESPACE[$1]}" -o addr show dev eth0) || return 1
    [[ $addresses == *" inet $2/"* || $addresses == *" inet6 $2/"* ]]
}

# Succeeds if HOST holds the lab's virtual IP.
lab_holds_vip() {
    lab_holds_address "$1" "$LAB_VIP"
}

# Succeeds if HOST holds the lab's virtual IP and OTHER does not.
lab_sole_vip_holder() {
    lab_holds_vip "$1" && ! lab_holds_vip "$2"
}

# Removes ADDR/LEN from HOST's eth0 if it is there (a SIGKILLed daemon
# leaves its virtual address behind).
lab_remove_address() {
    if lab_holds_address "$1" "${2%/*}"; then
        ip -n "${LAB_NAMESPACE[$1]}" addr del "$2" dev eth0
    fi
}

# Waits up to TIMEOUT_MS for each PID to exit, and reaps those that are
# children of this shell; sets LAB_EXIT_STATUS to the first one's exit
# status. Returns 1 if one still runs.
lab_wait_exit() {
    local timeout_ms=$1 pid status first=1
    shift
    for pid in "$@"; do
        # An exited child stays a zombie (state Z) until reaped by `wait`.
        lab_poll "$timeout_ms" lab_process_gone "$pid" || return 1
        status=0
        wait "$pid" 2>/dev/null || status=$?
        if ((first)); then
            # shellcheck disable=SC2034
            LAB_EXIT_STATUS=$status
            first=0
        fi
    done
}

# Sends SIGNAL to PID... and waits up to TIMEOUT_MS for each to exit, as
# lab_wait_exit does. Bash reports a child killed by a signal ("Killed") on
# stderr whenever it notices; this runs with stderr on /dev/null until the
# children are reaped, so that report does not clutter the output.
lab_signal_and_wait() {
    local signal=$1 timeout_ms=$2
    shift 2
    {
        kill -"$signal" "$@" || true
        lab_wait_exit "$timeout_ms" "$@"
    } 2>/dev/null
}

# Succeeds if PID no longer runs (gone, or a zombie).
lab_process_gone() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
    stat=${stat##*) }
    [[ ${stat:0:1} == Z ]]
}

# Prints the pids of the live processes in HOST's namespace, one a line.
lab_host_pids() {
    local pid
    for pid in $(ip netns pids "${LAB_NAMESPACE[$1]}"); do
        lab_process_gone "$pid" || echo "$pid"
    done
}

# Prints the sum, in KiB, of the memory FIELD of the processes PID...:
#   VmRSS    resident set size (/proc/PID/status): every page mapped in,
#            the program's code and shared libraries included;
#   RssAnon  its anonymous part: heap, stacks, private data;
#   Pss      proportional set size (/proc/PID/smaps_rollup): a page shared
#            by N processes counts 1/N, so the pages a forked child shares
#            with its parent are not counted twice.
lab_memory_kib() {
    local field=$1 file pid total=0 key value _
    shift
    case $field in
        VmRSS | RssAnon) file=status ;;
        Pss) file=smaps_rollup ;;
        *) lab_fail "lab_memory_kib: unknown field '$field' (VmRSS, RssAnon or Pss)" ;;
    esac
    for pid in "$@"; do
        while read -r key value _; do
            if [[ $key == "$field:" ]]; then
                total=$((total + value))
            fi
        done <"/proc/$pid/$file"
    done
    echo "$total"
}

# SIGKILLs every process in HOST's namespace and waits until they are gone
# (returns 1 if one survives 5 s). The mount namespaces those processes use
# (`ip netns exec` gives each command one of its own: the storage hooks
# mount there) are held open across the kill and let go after it, and the
# loop devices mounted in them over files of $LAB_DIR are detached: were
# nbdfuse the last process to leave its namespace, the file system's last
# flush would wait forever on that very nbdfuse.
lab_kill_host() {
    local pids pid fd device fds=() loops=() seen=" "
    mapfile -t pids < <(lab_host_pids "$1")
    ((${#pids[@]} == 0)) && return 0
    for pid in "${pids[@]}"; do
        local mnt
        mnt=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
        [[ $seen == *" $mnt "* ]] && continue
        seen+="$mnt "
        exec {fd}<"/proc/$pid/ns/mnt" || continue
        fds+=("$fd")
        mapfile -t -O "${#loops[@]}" loops < <(lab_loop_devices "$pid")
    done
    local status=0
    lab_signal_and_wait KILL 5000 "${pids[@]}" || status=1
    for fd in "${fds[@]}"; do
        exec {fd}<&-
    done
    for device in "${loops[@]}"; do
        losetup -d "$device" 2>/dev/null || true
    done
    return "$status"
}

# Prints the loop devices whose backing file lies under $LAB_DIR, as the
# mount namespace of process PID sees them.
lab_loop_devices() {
    local listing name back
    # The process may be gone already: then there is nothing to list.
    listing=$(nsenter --mount="/proc/$1/ns/mnt" losetup --list --noheadings --output NAME,BACK-FILE 2>/dev/null) ||
        return 0
    while read -r name back; do
        if [[ $back == "$LAB_DIR"/* ]]; then
            echo "$name"
        fi
    done <<<"$listing"
}

# ---- The storage service: replicad + vrrpd + the hooks + an HTTP server ----
# Host HOST keeps its configuration in $LAB_DIR/HOST/etc (r0.yaml and
# vrrp.yaml, the same files on both hosts), its run directory in
# $LAB_DIR/HOST/run and its backing file in $LAB_DIR/HOST/r0.img. The
# MASTER's hooks mount r0 on $LAB_MOUNTPOINT (the same path on both hosts:
# each vrrpd runs in a mount namespace of its own) and serve it over HTTP
# on the VIP with scripts/fileserver.py. Needs lab_build_all.
LAB_RESOURCE=r0
LAB_MOUNTPOINT=""
declare -A LAB_VRRPD_PID=()

# Writes $LAB_DIR/etc/{r0.yaml,vrrp.yaml} for hosts HOST1 (priority 150)
# and HOST2 (100) with VRRP VERSION and ADVERT_INT, and copies them to a
# fresh directory of each host, with an empty backing file of 64 MiB.
# Usage: lab_storage_config VERSION ADVERT_INT HOST1 HOST2
lab_storage_config() {
    local version=$1 advert_int=$2 first=$3 second=$4 host
    LAB_MOUNTPOINT=$LAB_DIR/srv
    mkdir -p "$LAB_MOUNTPOINT" "$LAB_DIR/etc"
    cat >"$LAB_DIR/etc/$LAB_RESOURCE.yaml" <<EOF
# Volume $LAB_RESOURCE, mirrored by replicad between $first and $second (protocol C:
# a write is acknowledged once it is on both disks).
resource: $LAB_RESOURCE
protocol: C
net:
  shared-secret: "lab-secret"
  verify-alg: crc32c
  # A dead peer is noticed within ping-int + ping-timeout (1 s + 0.5 s), or
  # within ping-timeout of a promotion refused while it looked Primary.
  ping-int: 1
  ping-timeout: 5
  timeout: 8
  connect-int: 1
disk:
  # Resync at up to 40 MiB/s even while the service writes.
  resync-rate: 40M
nodes:
  $first: {address: "${LAB_ADDRESS[$first]}:7789", disk: $LAB_DIR/$first/r0.img, meta-disk: internal}
  $second: {address: "${LAB_ADDRESS[$second]}:7789", disk: $LAB_DIR/$second/r0.img, meta-disk: internal}
EOF
    cat >"$LAB_DIR/etc/vrrp.yaml" <<EOF
# The MASTER serves $LAB_RESOURCE: promote makes it Primary, mounts it on
# $LAB_MOUNTPOINT and starts the file server; demote undoes that in reverse.
instances:
  - name: VI_STORAGE
    interface: eth0
    virtual_router_id: $LAB_VRID
    version: $version
    advert_int: $advert_int
    virtual_ipaddress: [$LAB_VIP/$LAB_VIP_LEN]
    nopreempt: true
    notify_master: [$LAB_REPO/scripts/hooks/promote, $LAB_RESOURCE, $LAB_MOUNTPOINT, --,
                    $LAB_REPO/scripts/fileserver.py, start, --root, $LAB_MOUNTPOINT, --bind, $LAB_VIP, --port, "80"]
    notify_backup: &demote [$LAB_REPO/scripts/hooks/demote, $LAB_RESOURCE, $LAB_MOUNTPOINT, --,
                            $LAB_REPO/scripts/fileserver.py, stop]
    notify_fault: *demote
    notify_stop: *demote
    notify_timeout: 60
    nodes:
      $first: {priority: 150}
      $second: {priority: 100}
EOF
    for host in "$first" "$second"; do
        rm -rf "${LAB_DIR:?}/$host"
        mkdir -p "$LAB_DIR/$host/run"
        cp -r "$LAB_DIR/etc" "$LAB_DIR/$host/etc"
        truncate -s 64M "$LAB_DIR/$host/r0.img"
    done
}

# haadm on HOST: its configuration and run directory.
lab_haadm() {
    local host=$1
    shift
    "$LAB_BIN/haadm" -c "$LAB_DIR/$host/etc" --node "$host" --run-dir "$LAB_DIR/$host/run" "$@"
}

# Succeeds once HOST's replicad answers on its control socket (haadm's
# exit code 3: not running; a killed one leaves its socket file behind).
lab_replicad_answers() {
    local code=0
    lab_haadm "$1" status >/dev/null 2>&1 || code=$?
    ((code != 3))
}

# Starts replicad on HOST, waits until it answers, and brings r0 up.
lab_storage_start_replicad() {
    local host=$1
    lab_spawn "$host" "$LAB_DIR/$host/replicad.log" \
        "$LAB_BIN/replicad" -c "$LAB_DIR/$host/etc" --node "$host" --run-dir "$LAB_DIR/$host/run"
    lab_poll 15000 lab_replicad_answers "$host" || lab_fail "replicad on $host did not answer within 15 s"
    lab_haadm "$host" up "$LAB_RESOURCE"
}

# Starts vrrpd on HOST; its hooks find haadm, the configuration and the run
# directory in the environment (see scripts/hooks/promote --help). Sets
# LAB_PID and LAB_VRRPD_PID[HOST].
lab_storage_start_vrrpd() {
    local host=$1
    lab_spawn "$host" "$LAB_DIR/$host/vrrpd.log" env \
        HAPAIR_CONFIG_DIR="$LAB_DIR/$host/etc" HAPAIR_NODE="$host" \
        HAPAIR_RUN_DIR="$LAB_DIR/$host/run" HAPAIR_HAADM="$LAB_BIN/haadm" \
        HAPAIR_EXPOSE=fuse HAPAIR_RETRIES=300 HAPAIR_RETRY_DELAY=0.1 \
        "$LAB_VRRPD" -f "$LAB_DIR/$host/etc/vrrp.yaml" --node "$host" --run-dir "$LAB_DIR/$host/run"
    LAB_VRRPD_PID[$host]=$LAB_PID
}

lab_storage_connected() {
    [[ $(lab_haadm "$1" cstate "$LAB_RESOURCE" 2>/dev/null) == Connected ]]
}

# Succeeds when HOST's r0 and its peer are connected and UpToDate.
lab_storage_in_sync() {
    lab_haadm "$1" status "$LAB_RESOURCE" --json 2>/dev/null | jq -e '.[0] | .disk == "UpToDate"
        and .peer.connection == "Connected" and .peer.disk == "UpToDate"
        and .peer.replication == "Established"' >/dev/null
}

lab_storage_is_primary() {
    [[ $(lab_haadm "$1" role "$LAB_RESOURCE" 2>/dev/null) == Primary ]]
}

# Succeeds when r0 is mounted in the mount namespace of HOST's vrrpd,
# where its hooks run.
lab_storage_is_mounted() {
    grep -q " $LAB_MOUNTPOINT " "/proc/${LAB_VRRPD_PID[$1]}/mounts" 2>/dev/null
}

# Succeeds when the file server answers GET / on the VIP, asked from HOST.
lab_storage_http_answers() {
    ip netns exec "${LAB_NAMESPACE[$1]}" curl -sf -o /dev/null --connect-timeout 0.5 -m 2 "http://$LAB_VIP/"
}

# The first steps on a fresh, configured pair HOST1 HOST2: metadata,
# replicad up on both, the initial sync skipped (both disks hold the same
# zeros: new-current-uuid --clear-bitmap), and an ext4 made through
# HOST1's export, exposed as a file by nbdfuse; both end Secondary. A
# command named by LAB_SHOW (e.g. a function printing its arguments) is
# run in front of the main commands.
lab_storage_init() {
    local first=$1 second=$2 host pid show=${LAB_SHOW:-}
    for host in "$first" "$second"; do
        $show lab_haadm "$host" create-md "$LAB_RESOURCE"
        lab_storage_start_replicad "$host"
    done
    lab_poll 30000 lab_storage_connected "$first" || lab_fail "$first and $second did not connect within 30 s"
    $show lab_haadm "$first" new-current-uuid --clear-bitmap "$LAB_RESOURCE"
    lab_poll 30000 lab_storage_in_sync "$first" || lab_fail "$first and $second were not UpToDate within 30 s"
    lab_haadm "$first" primary "$LAB_RESOURCE"
    mkdir -p "$LAB_DIR/mkfs"
    rm -f "$LAB_DIR/mkfs.pid"
    nbdfuse -P "$LAB_DIR/mkfs.pid" "$LAB_DIR/mkfs" \
        "nbd+unix:///?socket=$LAB_DIR/$first/run/$LAB_RESOURCE.nbd" >>"$LAB_DIR/mkfs.log" 2>&1 &
    pid=$!
    lab_poll 15000 test -s "$LAB_DIR/mkfs.pid" || lab_fail "nbdfuse did not serve $first's export within 15 s"
    $show mkfs.ext4 -q -F -L hapair "$LAB_DIR/mkfs/nbd"
    fusermount3 -u "$LAB_DIR/mkfs"
    lab_wait_exit 15000 "$pid" || lab_fail "nbdfuse did not exit after its unmount"
    lab_haadm "$first" secondary "$LAB_RESOURCE"
}

# Watches a hard failover to SURVIVOR from FROM_US (microseconds, the
# moment of the kill) until, seen every ~10 ms: SURVIVOR holds the VIP, r0
# is Primary there, mounted there, and the file server answers CLIENT.
# Sets LAB_FAILOVER_MS[vip|primary|mounted|http] to the milliseconds from
# FROM_US at which each was first seen; returns 1 after TIMEOUT_MS.
# Usage: lab_storage_failover_timeline SURVIVOR CLIENT FROM_US TIMEOUT_MS
declare -A LAB_FAILOVER_MS=()
lab_storage_failover_timeline() {
    LAB_FAILOVER_MS=()
    lab_poll "$4" lab_storage_failover_seen "$@"
}

lab_storage_failover_seen() {
    local survivor=$1 client=$2 from_us=$3
    lab_storage_mark vip "$from_us" lab_holds_vip "$survivor"
    lab_storage_mark primary "$from_us" lab_storage_is_primary "$survivor"
    lab_storage_mark mounted "$from_us" lab_storage_is_mounted "$survivor"
    # Only once mounted: before that a try waits for its connect timeout
    # (no host answers ARP for the VIP), which would blur the other times.
    [[ -n ${LAB_FAILOVER_MS[mounted]:-} ]] || return 1
    lab_storage_mark http "$from_us" lab_storage_http_answers "$client"
    ((${#LAB_FAILOVER_MS[@]} == 4))
}

# Sets LAB_FAILOVER_MS[WHAT] to the milliseconds since FROM_US unless it is
# set already, when CMD... succeeds.
lab_storage_mark() {
    local what=$1 from_us=$2
    shift 2
    [[ -z ${LAB_FAILOVER_MS[$what]:-} ]] || return 0
    if "$@"; then
        LAB_FAILOVER_MS[$what]=$(((${EPOCHREALTIME/[.,]/} - from_us) / 1000))
    fi
    return 0
}

# The EXIT trap: kills what runs in the lab, deletes the namespaces and the
# scratch directory. On failure it shows the end of every daemon log first.
lab_cleanup() {
    local status=$? host namespace log number
    set +e
    trap - ERR INT TERM HUP
    for host in "${LAB_HOSTS[@]}"; do
        lab_kill_host "$host" 2>/dev/null
    done
    for namespace in "${LAB_NAMESPACE[@]}" "$LAB_SWITCH"; do
        ip netns del "$namespace" 2>/dev/null
    done
    # Veths that never reached the switch (a failure in the middle of lab_up).
    for ((number = 1; number <= ${#LAB_HOSTS[@]}; number++)); do
        ip link del "${LAB_PREFIX}v${number}" 2>/dev/null
    done
    if [[ -n $LAB_DIR ]]; then
        if ((status != 0 && ${#LAB_LOGS[@]})); then
            for log in "${LAB_LOGS[@]}"; do
                [[ -s $log ]] || continue
                echo "--- last lines of $log ---" >&2
                tail -n 15 "$log" >&2
            done
            echo "$LAB_SCRIPT: failed (exit $status); the lab is removed, its files are kept in $LAB_DIR" >&2
        else
            rm -rf "$LAB_DIR"
        fi
    fi
    exit "$status"
}
