#!/usr/bin/env bash
# demo.sh: hapair's main demonstration, one command on a fresh Debian or
# Ubuntu machine, as root:
#
#     sudo scripts/demo.sh
#
# It builds hapair, installs the Debian packages it needs when they are
# missing, and tells the story of the storage pair with real figures: two
# hosts (ha1, ha2) and a client in network namespaces; the same
# configuration on both hosts; replicad mirroring volume r0 between them;
# vrrpd electing a MASTER whose promote hook makes r0 Primary, mounts its
# file system and serves it over HTTP on the virtual IP; a client storing
# files; the MASTER killed hard (link cut, every process SIGKILLed) and the
# timeline of the failover (VIP moved, Primary, mounted, HTTP answering);
# every file checked; the old master back as SyncTarget until UpToDate.
#
# Everything lives in the lab's namespaces and $LAB_DIR and is removed when
# the demo ends, also on failure or Ctrl-C. It exits non-zero when a step
# does not happen as told. HAPAIR_BIN_DIR=DIR uses the programs in DIR
# instead of building them (the lab test of the demo does).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

# How long any one step may take before the demo calls it a failure.
STEP_TIMEOUT_MS=60000
# Files the client stores before the failover, and after it.
FILES_BEFORE=20
FILES_AFTER=5
RESOURCE=r0
HTTP=http://$LAB_VIP

say() {
    printf '%s\n' "$@"
}

step() {
    printf '\n== %s ==\n' "$*"
}

# Prints a command, as typed, then runs it.
show() {
    printf '$ %s\n' "$*"
    "$@"
}

# Milliseconds as seconds with three decimals.
seconds() {
    printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000))
}

# haadm on HOST: its configuration and run directory.
haadm_on() {
    local host=$1
    shift
    "$LAB_BIN/haadm" -c "$LAB_DIR/$host/etc" --node "$host" --run-dir "$LAB_DIR/$host/run" "$@"
}

# Runs CMD... in the client's namespace.
on_client() {
    ip netns exec "${LAB_NAMESPACE[client]}" "$@"
}

vrrp_state() {
    jq -r '.instances[0].state' "$LAB_DIR/$1/run/vrrp/state.json" 2>/dev/null || true
}

in_vrrp_state() {
    [[ $(vrrp_state "$1") == "$2" ]]
}

is_primary() {
    [[ $(haadm_on "$1" role "$RESOURCE" 2>/dev/null) == Primary ]]
}

# Succeeds when the file system is mounted in HOST's vrrpd's mount
# namespace, where its hooks run (`ip netns exec` gives each process it
# starts a mount namespace of its own).
is_mounted() {
    grep -q " $MOUNTPOINT " "/proc/${VRRPD_PID[$1]}/mounts" 2>/dev/null
}

http_answers() {
    on_client curl -sf -o /dev/null --connect-timeout 0.5 -m 2 "$HTTP/"
}

connected() {
    [[ $(haadm_on "$1" cstate "$RESOURCE" 2>/dev/null) == Connected ]]
}

# Succeeds when both nodes are connected and UpToDate.
in_sync() {
    haadm_on "$1" status "$RESOURCE" --json 2>/dev/null | jq -e '.[0] | .disk == "UpToDate"
        and .peer.connection == "Connected" and .peer.disk == "UpToDate"
        and .peer.replication == "Established"' >/dev/null
}

# Waits up to STEP_TIMEOUT_MS for CMD... or fails with WHAT.
wait_for() {
    local what=$1
    shift
    lab_poll "$STEP_TIMEOUT_MS" "$@" || lab_fail "$what did not happen within $((STEP_TIMEOUT_MS / 1000)) s"
}

# Succeeds once HOST's replicad answers on its control socket (haadm's
# exit code 3: not running; a killed one leaves its socket file behind).
replicad_answers() {
    local code=0
    haadm_on "$1" status >/dev/null 2>&1 || code=$?
    ((code != 3))
}

start_replicad() {
    local host=$1
    lab_spawn "$host" "$LAB_DIR/$host/replicad.log" \
        "$LAB_BIN/replicad" -c "$LAB_DIR/$host/etc" --node "$host" --run-dir "$LAB_DIR/$host/run"
    wait_for "replicad on $host answering" replicad_answers "$host"
    haadm_on "$host" up "$RESOURCE"
}

# Starts vrrpd on HOST; its hooks find haadm, the configuration and the
# run directory in the environment (see scripts/hooks/promote --help).
start_vrrpd() {
    local host=$1
    lab_spawn "$host" "$LAB_DIR/$host/vrrpd.log" env \
        HAPAIR_CONFIG_DIR="$LAB_DIR/$host/etc" HAPAIR_NODE="$host" \
        HAPAIR_RUN_DIR="$LAB_DIR/$host/run" HAPAIR_HAADM="$LAB_BIN/haadm" \
        HAPAIR_EXPOSE=fuse HAPAIR_RETRIES=300 HAPAIR_RETRY_DELAY=0.1 \
        "$LAB_VRRPD" -f "$LAB_DIR/$host/etc/vrrp.yaml" --node "$host" --run-dir "$LAB_DIR/$host/run"
    VRRPD_PID[$host]=$LAB_PID
}

# Stores N files named PREFIX-K of random size through the virtual IP; a
# file is recorded (name and SHA-256) only once the server answered 201,
# which it sends after fsync.
upload() {
    local prefix=$1 count=$2 k name file
    for ((k = 1; k <= count; k++)); do
        name=$prefix-$k
        file=$LAB_DIR/client/$name
        head -c $((1024 + RANDOM % 64 * 1024)) /dev/urandom >"$file"
        on_client curl -sS --fail -m 10 -o /dev/null -H "Expect:" -T "$file" "$HTTP/$name" ||
            lab_fail "the upload of $name was refused"
        echo "$(sha256sum <"$file" | cut -d' ' -f1) $name" >>"$LAB_DIR/client/stored"
    done
}

# Downloads every recorded file and compares its SHA-256; prints a count.
check_files() {
    local sum name got bad=0 total=0
    while read -r sum name; do
        total=$((total + 1))
        got=$(on_client curl -sS --fail -m 10 "$HTTP/$name" | sha256sum | cut -d' ' -f1) || got=missing
        if [[ $got != "$sum" ]]; then
            say "  $name: MISSING OR DIFFERENT"
            bad=$((bad + 1))
        fi
    done <"$LAB_DIR/client/stored"
    ((bad == 0)) || lab_fail "$bad of $total stored files are missing or different"
    say "All $total files the server acknowledged are there, with the same SHA-256."
}

lab_init demo
lab_require_root
declare -A VRRPD_PID=()
DEMO_START_US=$(lab_now_us)

step "1. Packages and build"
say "iproute2: the namespaces; jq: JSON states; libnbd-bin + fuse3: nbdfuse exposes the" \
    "volume as a file; e2fsprogs: ext4; python3: the HTTP file server; curl: the client."
lab_install_packages iproute2 jq libnbd-bin fuse3 e2fsprogs python3 curl util-linux
lab_build_all
say "Programs: $LAB_BIN/{vrrpd,replicad,haadm,hookrun}"

step "2. Two hosts and a client"
lab_up ha1 ha2 client
MOUNTPOINT=$LAB_DIR/srv
mkdir -p "$MOUNTPOINT" "$LAB_DIR/client"
say "Three network namespaces on one bridge (this machine's own network is left alone):" \
    "  ha1    ${LAB_ADDRESS[ha1]}   storage host" \
    "  ha2    ${LAB_ADDRESS[ha2]}   storage host" \
    "  client ${LAB_ADDRESS[client]}   uploads and reads files on the virtual IP $LAB_VIP"

step "3. The same configuration on both hosts"
mkdir -p "$LAB_DIR/etc"
cat >"$LAB_DIR/etc/$RESOURCE.yaml" <<EOF
# Volume r0, mirrored by replicad between ha1 and ha2 (protocol C: a write
# is acknowledged once it is on both disks).
resource: $RESOURCE
protocol: C
net:
  shared-secret: "demo-secret"
  verify-alg: crc32c
  # A dead peer is noticed within ping-int + ping-timeout (1 s + 0.5 s).
  ping-int: 1
  ping-timeout: 5
  timeout: 8
  connect-int: 1
nodes:
  ha1: {address: "${LAB_ADDRESS[ha1]}:7789", disk: $LAB_DIR/ha1/r0.img, meta-disk: internal}
  ha2: {address: "${LAB_ADDRESS[ha2]}:7789", disk: $LAB_DIR/ha2/r0.img, meta-disk: internal}
EOF
cat >"$LAB_DIR/etc/vrrp.yaml" <<EOF
# The MASTER serves r0: promote makes it Primary, mounts it on $MOUNTPOINT and
# starts the file server; demote undoes that in reverse.
instances:
  - name: VI_STORAGE
    interface: eth0
    virtual_router_id: $LAB_VRID
    version: 3
    advert_int: 0.2
    virtual_ipaddress: [$LAB_VIP/$LAB_VIP_LEN]
    nopreempt: true
    notify_master: [$LAB_REPO/scripts/hooks/promote, $RESOURCE, $MOUNTPOINT, --,
                    $LAB_REPO/scripts/fileserver.py, start, --root, $MOUNTPOINT, --bind, $LAB_VIP, --port, "80"]
    notify_backup: &demote [$LAB_REPO/scripts/hooks/demote, $RESOURCE, $MOUNTPOINT, --,
                            $LAB_REPO/scripts/fileserver.py, stop]
    notify_fault: *demote
    notify_stop: *demote
    notify_timeout: 60
    nodes:
      ha1: {priority: 150}
      ha2: {priority: 100}
EOF
for host in ha1 ha2; do
    mkdir -p "$LAB_DIR/$host/run"
    cp -r "$LAB_DIR/etc" "$LAB_DIR/$host/etc"
    truncate -s 64M "$LAB_DIR/$host/r0.img"
done
say "Each host has its own copy in $LAB_DIR/HOST/etc; the files are identical:" ""
show cat "$LAB_DIR/etc/$RESOURCE.yaml"
echo
show cat "$LAB_DIR/etc/vrrp.yaml"
cmp "$LAB_DIR/ha1/etc/vrrp.yaml" "$LAB_DIR/ha2/etc/vrrp.yaml"
cmp "$LAB_DIR/ha1/etc/$RESOURCE.yaml" "$LAB_DIR/ha2/etc/$RESOURCE.yaml"

step "4. Metadata, up, initial sync, a file system"
for host in ha1 ha2; do
    show haadm_on "$host" create-md "$RESOURCE"
    start_replicad "$host"
done
wait_for "the connection between ha1 and ha2" connected ha1
say "Both disks are new and hold the same zeros: instead of copying 64 MiB, tell" \
    "replicad so (DRBD's new-current-uuid --clear-bitmap):"
show haadm_on ha1 new-current-uuid --clear-bitmap "$RESOURCE"
wait_for "ha1 and ha2 UpToDate" in_sync ha1
say "ha1 makes the ext4, through its NBD export exposed as a file by nbdfuse:"
haadm_on ha1 primary "$RESOURCE"
mkdir -p "$LAB_DIR/mkfs"
nbdfuse -P "$LAB_DIR/mkfs.pid" "$LAB_DIR/mkfs" "nbd+unix:///?socket=$LAB_DIR/ha1/run/$RESOURCE.nbd" &
MKFS_FUSE_PID=$!
wait_for "nbdfuse serving" test -s "$LAB_DIR/mkfs.pid"
show mkfs.ext4 -q -F -L hapair "$LAB_DIR/mkfs/nbd"
fusermount3 -u "$LAB_DIR/mkfs"
lab_wait_exit 10000 "$MKFS_FUSE_PID" || lab_fail "nbdfuse did not exit after its unmount"
haadm_on ha1 secondary "$RESOURCE"
show haadm_on ha1 status "$RESOURCE"

step "5. vrrpd on both hosts: the MASTER serves"
started_us=$(lab_now_us)
start_vrrpd ha1
start_vrrpd ha2
say "ha1 (priority 150) becomes MASTER; its notify_master hook promotes r0, exposes it" \
    "(nbdfuse + loop device), checks and mounts the ext4 and starts the file server."
wait_for "ha1 MASTER" in_vrrp_state ha1 MASTER
wait_for "HTTP on $LAB_VIP" http_answers
say "Serving $(seconds "$(lab_ms_between "$started_us" "$LAB_SEEN_US")") after vrrpd started. ha1's promote hook said:"
grep -o 'promote r0: .*' "$LAB_DIR/ha1/vrrpd.log" | sed 's/^/  /'

step "6. The client stores files"
upload before "$FILES_BEFORE"
say "Uploaded $FILES_BEFORE files with curl -T to $HTTP/NAME; each was recorded with its" \
    "SHA-256 only after the server answered 201 Created, which it does after fsync."
show on_client curl -sS "$HTTP/"
check_files

step "7. The master dies: link cut, every process SIGKILLed"
say "Like a power loss: ha1's eth0 goes down, then every process of ha1 (vrrpd, replicad," \
    "nbdfuse, the file server) is SIGKILLed. Watching from the outside every ~10 ms:"
killed_us=$(lab_now_us)
ip -n "${LAB_NAMESPACE[ha1]}" link set eth0 down
lab_kill_host ha1 || lab_fail "a process of ha1 survived SIGKILL"
declare -A SEEN_MS=()
watch_failover() {
    [[ -n ${SEEN_MS[vip]:-} ]] || { lab_holds_vip ha2 && SEEN_MS[vip]=$(lab_ms_between "$killed_us" "$(lab_now_us)"); }
    [[ -n ${SEEN_MS[primary]:-} ]] || { is_primary ha2 && SEEN_MS[primary]=$(lab_ms_between "$killed_us" "$(lab_now_us)"); }
    [[ -n ${SEEN_MS[mounted]:-} ]] || { is_mounted ha2 && SEEN_MS[mounted]=$(lab_ms_between "$killed_us" "$(lab_now_us)"); }
    [[ -n ${SEEN_MS[http]:-} ]] || { http_answers && SEEN_MS[http]=$(lab_ms_between "$killed_us" "$(lab_now_us)"); }
    ((${#SEEN_MS[@]} == 4))
}
lab_poll "$STEP_TIMEOUT_MS" watch_failover ||
    lab_fail "the failover did not complete within $((STEP_TIMEOUT_MS / 1000)) s (seen: ${!SEEN_MS[*]})"
say "" "Failover timeline, from the kill:" \
    "  $(seconds "${SEEN_MS[vip]}")  ha2 holds the virtual IP (VRRP: 3 × 0.2 s adverts missed + skew)" \
    "  $(seconds "${SEEN_MS[primary]}")  r0 is Primary on ha2 (once replicad noticed the peer gone: ping-int + ping-timeout)" \
    "  $(seconds "${SEEN_MS[mounted]}")  the ext4 is mounted on ha2 (after fsck replayed its journal)" \
    "  $(seconds "${SEEN_MS[http]}")  HTTP answers on $LAB_VIP again"

step "8. Nothing acknowledged was lost"
check_files
upload after "$FILES_AFTER"
say "ha2 stores new files too:"
check_files

step "9. ha1 comes back and resyncs as SyncTarget"
say "A rebooted ha1 has no virtual IP and starts replicad; r0 was Primary when it died, so" \
    "what it may have written last (its activity log) and all ha2 wrote since are resynced:"
lab_remove_address ha1 "$LAB_VIP/$LAB_VIP_LEN"
ip -n "${LAB_NAMESPACE[ha1]}" link set eth0 up
start_replicad ha1
show_progress() {
    local line
    line=$(haadm_on ha1 status "$RESOURCE" --json 2>/dev/null |
        jq -r '.[0] | "\(.disk) \(.peer.connection) \(.peer.replication) \(.peer.done // "")"') || return 1
    [[ $line == "${LAST_PROGRESS:-}" ]] || say "  ha1: $line"
    LAST_PROGRESS=$line
    [[ $line == "UpToDate Connected Established "* ]]
}
lab_poll "$STEP_TIMEOUT_MS" show_progress || lab_fail "ha1 did not resync within $((STEP_TIMEOUT_MS / 1000)) s"
grep -h 'resync' "$LAB_DIR/ha1/replicad.log" | sed 's/^/  /' | tail -n 3
start_vrrpd ha1
wait_for "ha1 BACKUP" in_vrrp_state ha1 BACKUP
say "ha1's vrrpd is BACKUP: with nopreempt, ha2 keeps the service." ""
show haadm_on ha1 status "$RESOURCE"
show haadm_on ha2 status "$RESOURCE"

step "Summary"
printf '  %-44s %s\n' \
    "hard kill to virtual IP on ha2:" "$(seconds "${SEEN_MS[vip]}")" \
    "hard kill to r0 Primary on ha2:" "$(seconds "${SEEN_MS[primary]}")" \
    "hard kill to file system mounted on ha2:" "$(seconds "${SEEN_MS[mounted]}")" \
    "hard kill to HTTP answering again:" "$(seconds "${SEEN_MS[http]}")" \
    "files stored, all intact:" "$(wc -l <"$LAB_DIR/client/stored")" \
    "demo run time (from the start, build included):" "$(seconds "$(lab_ms_between "$DEMO_START_US" "$(lab_now_us)")")"
say "" "scripts/bench/failover.sh measures these over several runs; docs/operations.md is the" \
    "operator's guide. Removing the lab."
