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

# Waits up to STEP_TIMEOUT_MS for CMD... or fails with WHAT.
wait_for() {
    local what=$1
    shift
    lab_poll "$STEP_TIMEOUT_MS" "$@" || lab_fail "$what did not happen within $((STEP_TIMEOUT_MS / 1000)) s"
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
DEMO_START_US=$(lab_now_us)

step "1. Packages and build"
say "iproute2: the namespaces; jq: JSON states; libnbd-bin + fuse3: nbdfuse exposes the" \
    "volume as a file; e2fsprogs: ext4; python3: the HTTP file server; curl: the client."
lab_install_packages iproute2 jq libnbd-bin fuse3 e2fsprogs python3 curl util-linux psmisc
lab_build_all
say "Programs: $LAB_BIN/{vrrpd,replicad,haadm,hookrun}"

step "2. Two hosts and a client"
lab_up ha1 ha2 client
mkdir -p "$LAB_DIR/client"
say "Three network namespaces on one bridge (this machine's own network is left alone):" \
    "  ha1    ${LAB_ADDRESS[ha1]}   storage host" \
    "  ha2    ${LAB_ADDRESS[ha2]}   storage host" \
    "  client ${LAB_ADDRESS[client]}   uploads and reads files on the virtual IP $LAB_VIP"

step "3. The same configuration on both hosts"
lab_storage_config 3 0.2 ha1 ha2
say "Each host has its own copy in $LAB_DIR/HOST/etc; the files are identical:" ""
show cat "$LAB_DIR/etc/$LAB_RESOURCE.yaml"
echo
show cat "$LAB_DIR/etc/vrrp.yaml"
cmp "$LAB_DIR/ha1/etc/vrrp.yaml" "$LAB_DIR/ha2/etc/vrrp.yaml"
cmp "$LAB_DIR/ha1/etc/$LAB_RESOURCE.yaml" "$LAB_DIR/ha2/etc/$LAB_RESOURCE.yaml"

step "4. Metadata, up, initial sync, a file system"
say "Metadata on both disks, replicad up on both; the disks are new and hold the same" \
    "zeros, so instead of copying 64 MiB the pair is told so (DRBD's new-current-uuid" \
    "--clear-bitmap); then ha1 makes the ext4 through its export, exposed as a file by nbdfuse:"
LAB_SHOW=show lab_storage_init ha1 ha2
show lab_haadm ha1 status "$LAB_RESOURCE"

step "5. vrrpd on both hosts: the MASTER serves"
started_us=$(lab_now_us)
lab_storage_start_vrrpd ha1
lab_storage_start_vrrpd ha2
say "ha1 (priority 150) becomes MASTER; its notify_master hook promotes r0, exposes it" \
    "(nbdfuse + loop device), checks and mounts the ext4 and starts the file server."
wait_for "ha1 MASTER" in_vrrp_state ha1 MASTER
wait_for "HTTP on $LAB_VIP" lab_storage_http_answers client
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
lab_storage_failover_timeline ha2 client "$killed_us" "$STEP_TIMEOUT_MS" ||
    lab_fail "the failover did not complete within $((STEP_TIMEOUT_MS / 1000)) s (seen: ${!LAB_FAILOVER_MS[*]})"
say "" "Failover timeline, from the kill:" \
    "  $(seconds "${LAB_FAILOVER_MS[vip]}")  ha2 holds the virtual IP (VRRP: 3 × 0.2 s adverts missed + skew)" \
    "  $(seconds "${LAB_FAILOVER_MS[primary]}")  r0 is Primary on ha2 (the promote hook's first try pings ha1: ping-timeout later it is given up)" \
    "  $(seconds "${LAB_FAILOVER_MS[mounted]}")  the ext4 is mounted on ha2 (after fsck replayed its journal)" \
    "  $(seconds "${LAB_FAILOVER_MS[http]}")  HTTP answers on $LAB_VIP again"

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
lab_storage_start_replicad ha1
show_progress() {
    local line
    line=$(lab_haadm ha1 status "$LAB_RESOURCE" --json 2>/dev/null |
        jq -r '.[0] | "\(.disk) \(.peer.connection) \(.peer.replication) \(.peer.done // "")"') || return 1
    [[ $line == "${LAST_PROGRESS:-}" ]] || say "  ha1: $line"
    LAST_PROGRESS=$line
    [[ $line == "UpToDate Connected Established "* ]]
}
lab_poll "$STEP_TIMEOUT_MS" show_progress || lab_fail "ha1 did not resync within $((STEP_TIMEOUT_MS / 1000)) s"
grep -h 'resync' "$LAB_DIR/ha1/replicad.log" | sed 's/^/  /' | tail -n 3
lab_storage_start_vrrpd ha1
wait_for "ha1 BACKUP" in_vrrp_state ha1 BACKUP
say "ha1's vrrpd is BACKUP: with nopreempt, ha2 keeps the service." ""
show lab_haadm ha1 status "$LAB_RESOURCE"
show lab_haadm ha2 status "$LAB_RESOURCE"

step "Summary"
printf '  %-44s %s\n' \
    "hard kill to virtual IP on ha2:" "$(seconds "${LAB_FAILOVER_MS[vip]}")" \
    "hard kill to r0 Primary on ha2:" "$(seconds "${LAB_FAILOVER_MS[primary]}")" \
    "hard kill to file system mounted on ha2:" "$(seconds "${LAB_FAILOVER_MS[mounted]}")" \
    "hard kill to HTTP answering again:" "$(seconds "${LAB_FAILOVER_MS[http]}")" \
    "files stored, all intact:" "$(wc -l <"$LAB_DIR/client/stored")" \
    "demo run time (from the start, build included):" "$(seconds "$(lab_ms_between "$DEMO_START_US" "$(lab_now_us)")")"
say "" "scripts/bench/failover.sh measures these over several runs; docs/operations.md is the" \
    "operator's guide. Removing the lab."
