#!/usr/bin/env bash
# demo.sh: hapair's main demonstration, one command on a fresh Debian or
# Ubuntu machine, as root:
#
#     sudo scripts/demo.sh
#
# It builds vrrpd, makes two hosts (ha1, ha2) out of network namespaces,
# lets them elect a MASTER that holds a virtual IP, then shows the IP move:
# when the master is killed (SIGKILL), when it comes back (preemption), and
# when it stops cleanly (SIGTERM), timing each move. Everything it creates
# lives in its own namespaces and is removed when it ends, also on failure
# or Ctrl-C. It exits non-zero if the virtual IP does not move as told.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/lab.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/lib/lab.sh"

# How long any one step may take before the demo calls it a failure.
STEP_TIMEOUT_MS=10000

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

state_file() {
    echo "$LAB_DIR/$1/run/vrrp/state.json"
}

# The state of instance VI_1 in HOST's state file (empty if none yet).
vrrp_state() {
    jq -r '.instances[0].state' "$(state_file "$1")" 2>/dev/null || true
}

in_state() {
    [[ $(vrrp_state "$1") == "$2" ]]
}

lacks_vip() {
    ! lab_holds_vip "$1"
}

# Shows, for HOST, the addresses on eth0 and what its vrrpd says.
show_host() {
    local host=$1
    show ip -n "${LAB_NAMESPACE[$host]}" -brief addr show dev eth0
    say "$host's vrrpd, in its state file $(state_file "$host"):"
    jq -r '.instances[] | "\(.name): \(.state), priority \(.effective_priority), master \(.master // "unknown"), holds \(.vips)"' \
        "$(state_file "$host")"
}

start_vrrpd() {
    local host=$1
    lab_spawn_vrrpd "$host" "$CONFIG"
    VRRPD_PID[$host]=$LAB_PID
    say "Started vrrpd on $host (pid $LAB_PID), logging to $LAB_DIR/$host/vrrpd.log."
}

# Waits until HOST alone holds the VIP and sets MOVED_MS to the time since
# FROM_US, or fails with REASON.
wait_for_move() {
    local host=$1 other=$2 from_us=$3 reason=$4
    lab_poll "$STEP_TIMEOUT_MS" lab_sole_vip_holder "$host" "$other" ||
        lab_fail "$host did not take $LAB_VIP within $((STEP_TIMEOUT_MS / 1000)) s: $reason"
    MOVED_MS=$(lab_ms_between "$from_us" "$LAB_SEEN_US")
}

lab_init demo
lab_require_root
declare -A VRRPD_PID=()

step "1. Packages and build"
say "iproute2 makes the network namespaces; jq reads vrrpd's JSON state file."
lab_install_packages iproute2 jq
lab_build_vrrpd
say "vrrpd: $LAB_VRRPD"

step "2. The lab: two hosts on one switch"
lab_up ha1 ha2
say "Each host is a network namespace with one interface, eth0, plugged into a" \
    "bridge (the switch) in a third namespace. This machine's own network is left alone." \
    "  ha1: ${LAB_NAMESPACE[ha1]}, ${LAB_ADDRESS[ha1]}/24" \
    "  ha2: ${LAB_NAMESPACE[ha2]}, ${LAB_ADDRESS[ha2]}/24" \
    "They will share the virtual IP $LAB_VIP: whoever is MASTER holds it."

step "3. The configuration"
CONFIG=$LAB_DIR/vrrp.yaml
lab_write_vrrpd_config "$CONFIG" 2 1 ha1=150 ha2=100
say "Both hosts read the same file, $CONFIG:" ""
cat "$CONFIG"
say "" "VRRP version 2, one advert per second (advert_int: 1). ha1 has the higher" \
    "priority, so it is the preferred MASTER. vrrpd checks the file for each node:"
for host in ha1 ha2; do
    show "$LAB_VRRPD" -f "$CONFIG" --node "$host" --check-config
done

step "4. Start vrrpd on both hosts"
started_us=$(lab_now_us)
start_vrrpd ha1
start_vrrpd ha2
say "Both start as BACKUP and listen for a MASTER's adverts. Hearing none, each" \
    "waits Master_Down_Interval = 3 × advert_int + skew, with skew = (256 − priority) / 256 s:" \
    "ha1 waits 3 + 106/256 ≈ 3.41 s, ha2 3 + 156/256 ≈ 3.61 s. ha1's timer ends first:" \
    "it becomes MASTER, adds the virtual IP, announces it with gratuitous ARP and sends" \
    "an advert every second. ha2 hears them and stays BACKUP."
wait_for_move ha1 ha2 "$started_us" "the first election did not happen (see the logs below)"
lab_poll "$STEP_TIMEOUT_MS" in_state ha2 BACKUP ||
    lab_fail "ha2 is not BACKUP after ha1 took the VIP (state: $(vrrp_state ha2))"
ELECTION_MS=$MOVED_MS
say "" "ha1 holds $LAB_VIP, $(seconds "$ELECTION_MS") after the start:"
show_host ha1
show_host ha2

step "5. The master dies (SIGKILL)"
say "SIGKILL gives vrrpd no chance to say goodbye, as when a host crashes. ha2" \
    "stops hearing adverts and takes over once Master_Down_Interval" \
    "(3 + 156/256 ≈ 3.61 s) has passed since the last one. That advert came 0 to 1 s" \
    "before the kill, so expect 2.6 to 3.6 s. The time is measured by checking ha2's" \
    "addresses (ip -n ... addr) every 10 ms."
killed_us=$(lab_now_us)
printf '$ kill -KILL %s\n' "${VRRPD_PID[ha1]}"
lab_signal_and_wait KILL 1000 "${VRRPD_PID[ha1]}" || lab_fail "vrrpd on ha1 survived SIGKILL for 1 s"
lab_poll "$STEP_TIMEOUT_MS" lab_holds_vip ha2 ||
    lab_fail "ha2 did not take $LAB_VIP within $((STEP_TIMEOUT_MS / 1000)) s of the master's death"
CRASH_MS=$(lab_ms_between "$killed_us" "$LAB_SEEN_US")
say "ha2 holds $LAB_VIP $(seconds "$CRASH_MS") after the kill:"
show_host ha2
say "" "ha2's vrrpd tells the same story in its log:"
show tail -n 2 "$LAB_DIR/ha2/vrrpd.log"
say "" "ha1's eth0 still has $LAB_VIP: a killed process cannot remove its addresses." \
    "On a real crash the whole host is gone with it; here it lingers:"
show ip -n "${LAB_NAMESPACE[ha1]}" -brief addr show dev eth0

step "6. ha1 comes back and takes the VIP back (preemption)"
say "A new vrrpd on ha1 first removes the stale $LAB_VIP, so the address is never" \
    "held twice by hosts that both run vrrpd. Then it starts as BACKUP and hears ha2" \
    "advertise priority 100, lower than its own 150. With preemption (the default;" \
    "nopreempt: true turns it off) it ignores those adverts and becomes MASTER when its" \
    "own Master_Down_Interval, ≈ 3.41 s, runs out. ha2 hears priority 150, goes back to" \
    "BACKUP and removes the address."
restarted_us=$(lab_now_us)
start_vrrpd ha1
lab_poll 2000 lacks_vip ha1 ||
    lab_fail "the restarted vrrpd did not remove the stale $LAB_VIP from ha1 within 2 s"
say "ha1's stale $LAB_VIP was removed $(seconds "$(lab_ms_between "$restarted_us" "$LAB_SEEN_US")") after the start."
wait_for_move ha1 ha2 "$restarted_us" "preemption did not happen"
PREEMPT_MS=$MOVED_MS
lab_poll "$STEP_TIMEOUT_MS" in_state ha2 BACKUP ||
    lab_fail "ha2 did not go back to BACKUP (state: $(vrrp_state ha2))"
say "ha1 holds $LAB_VIP again, $(seconds "$PREEMPT_MS") after its restart:"
show_host ha1
show_host ha2

step "7. The master stops cleanly (SIGTERM)"
say "On SIGTERM vrrpd sends one last advert with priority 0 (\"I am leaving\")," \
    "removes the virtual IP and exits. A BACKUP that hears priority 0 does not wait" \
    "3 intervals: only its skew, (256 − 100) / 256 ≈ 0.61 s."
stopped_us=$(lab_now_us)
show kill -TERM "${VRRPD_PID[ha1]}"
wait_for_move ha2 ha1 "$stopped_us" "the priority-0 advert did not hand the VIP over"
TERM_MS=$MOVED_MS
lab_wait_exit "$STEP_TIMEOUT_MS" "${VRRPD_PID[ha1]}" ||
    lab_fail "vrrpd on ha1 did not exit within $((STEP_TIMEOUT_MS / 1000)) s of SIGTERM"
((LAB_EXIT_STATUS == 0)) || lab_fail "vrrpd on ha1 exited with status $LAB_EXIT_STATUS after SIGTERM, not 0"
say "ha2 holds $LAB_VIP $(seconds "$TERM_MS") after the SIGTERM; vrrpd on ha1 exited with status 0" \
    "and left no address behind:"
show ip -n "${LAB_NAMESPACE[ha1]}" -brief addr show dev eth0
show_host ha2

step "Summary"
printf '  %-38s %s   (expected %s)\n' \
    "first election (start to MASTER):" "$(seconds "$ELECTION_MS")" "≈ 3.41 s" \
    "master killed (SIGKILL) to failover:" "$(seconds "$CRASH_MS")" "2.6 to 3.6 s" \
    "master back to failback (preemption):" "$(seconds "$PREEMPT_MS")" "≈ 3.41 s" \
    "master stopped (SIGTERM) to failover:" "$(seconds "$TERM_MS")" "≈ 0.61 s"
say "" "Faster failover: VRRP version 3 with advert_int: 0.1 (configs/vrrp-v3-fast-ipv4.yaml)" \
    "divides these times by ten. scripts/bench/failover.sh compares them with keepalived." \
    "Removing the lab."
