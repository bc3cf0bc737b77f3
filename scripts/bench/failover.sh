#!/usr/bin/env bash
# failover.sh: two measurements on the two-host namespace lab.
#
# vrrp: compares vrrpd with keepalived, in the same run: how long the
# virtual IP takes to reach the backup when the master is killed (SIGKILL)
# or stopped (SIGTERM), and how much memory (VmRSS, RssAnon and Pss) each
# daemon uses.
#
# service: the whole storage service (vrrpd, replicad, the promote and
# demote hooks, an HTTP file server on the virtual IP; the setup of
# scripts/demo.sh): from the hard kill of the master's host (link down,
# every process SIGKILLed) until (a) the backup holds the VIP, (b) r0 is
# Primary there, (c) its file system is mounted, (d) HTTP answers a client
# on the VIP; VRRPv3 with 0.1 s adverts and VRRPv2 with 1 s.
#
# Run as root on Debian or Ubuntu:
#
#     sudo scripts/bench/failover.sh [-n REPETITIONS] [-p vrrp|service|all]
#
# The programs are built in release mode; HAPAIR_BIN_DIR=DIR uses the ones
# in DIR instead (the service part only: the vrrp part always builds).
#
# Scenarios: VRRPv2 with advert_int 1 s and VRRPv3 with advert_int 0.1 s,
# each with SIGKILL and SIGTERM. Every repetition starts a fresh pair of the
# same daemon (ha1 priority 150, ha2 priority 100), waits for ha1 to hold the
# VIP, kills or stops ha1 a fixed 2.25 advert intervals later, and times
# until ha2 holds the VIP: `ip monitor address` in each host timestamps the
# moment the address is added (the time polled with `ip -n ha2 addr` every
# ~10 ms is shown next to it). It ends with Markdown tables;
# docs/BENCHMARKS.md explains the method.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../lib/lab.sh disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/../lib/lab.sh"

CONVERGE_TIMEOUT_MS=20000
FAILOVER_TIMEOUT_MS=10000
MASTER_PRIORITY=150
BACKUP_PRIORITY=100
DAEMONS=(vrrpd keepalived)
# "version advert_int" pairs.
SCENARIOS=("2 1" "3 0.1")
SIGNALS=(KILL TERM)
MEMORY_FIELDS=(VmRSS RssAnon Pss)

usage() {
    echo "usage: $0 [-n REPETITIONS] [-p vrrp|service|all]   (default 5, all; needs root)"
}

repetitions=5
part=all
while getopts "n:p:h" option; do
    case $option in
        n) repetitions=$OPTARG ;;
        p) part=$OPTARG ;;
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
if ! [[ $repetitions =~ ^[1-9][0-9]*$ ]]; then
    echo "failover.sh: -n takes a positive whole number of repetitions, not '$repetitions'" >&2
    exit 2
fi
if ! [[ $part =~ ^(vrrp|service|all)$ ]]; then
    echo "failover.sh: -p takes vrrp, service or all, not '$part'" >&2
    exit 2
fi

# Prints VALUE × FACTOR, rounded to a whole number (advert_int may be 0.1).
scaled() {
    awk -v value="$1" -v factor="$2" 'BEGIN { printf "%d", value * factor + 0.5 }'
}

# Sleeps until the microsecond timestamp DEADLINE_US.
sleep_until() {
    local now=${EPOCHREALTIME/[.,]/}
    if (($1 > now)); then
        read -r -t "$(awk -v us=$(($1 - now)) 'BEGIN { printf "%.6f", us / 1e6 }')" -u "$LAB_TICK_FD" _ || true
    fi
}

# Starts `ip monitor address` on HOST: it timestamps every address change
# as the kernel reports it, finer than polling.
start_address_monitor() {
    : >"$LAB_DIR/$1/addresses.log"
    lab_spawn "$1" "$LAB_DIR/$1/addresses.log" ip -ts -oneline monitor address
    MONITOR_PID[$1]=$LAB_PID
}

# Succeeds if HOST's address monitor saw the VIP added (EVENT "added") or
# removed ("removed"); sets VIP_EVENT_US to the last time it did.
vip_event_on() {
    local host=$1 event=$2 line stamp=""
    while IFS= read -r line; do
        # [2026-11-25T07:34:33.647708] 2: eth0    inet 10.99.0.100/24 ...
        # [2026-11-25T07:34:33.650596] Deleted 2: eth0    inet 10.99.0.100/24 ...
        [[ $line == *" inet $LAB_VIP/"* ]] || continue
        if [[ $line == *"] Deleted "* ]]; then
            [[ $event == removed ]] && stamp=${line%%]*}
        else
            [[ $event == added ]] && stamp=${line%%]*}
        fi
    done <"$LAB_DIR/$host/addresses.log"
    [[ -n $stamp ]] || return 1
    VIP_EVENT_US=$(date -d "${stamp#[}" +%s%6N)
}

# Prints the pids of the daemon's processes on HOST (not the monitor's).
daemon_pids() {
    local pid
    for pid in $(lab_host_pids "$1"); do
        ((pid == MONITOR_PID[$1])) || echo "$pid"
    done
}

# Writes a keepalived.conf equivalent to lab_write_vrrpd_config's instance.
# Usage: write_keepalived_config FILE VERSION ADVERT_INT PRIORITY ROUTER_ID
write_keepalived_config() {
    cat >"$1" <<EOF
global_defs {
    router_id $5
    vrrp_version $2
}
vrrp_instance $LAB_INSTANCE {
    state BACKUP
    interface eth0
    virtual_router_id $LAB_VRID
    priority $4
    advert_int $3
    virtual_ipaddress {
        $LAB_VIP/$LAB_VIP_LEN
    }
}
EOF
}

# Starts DAEMON on HOST with the configuration of VERSION; sets LAB_PID.
start_daemon() {
    local daemon=$1 host=$2 version=$3 dir="$LAB_DIR/$2"
    case $daemon in
        vrrpd) lab_spawn_vrrpd "$host" "$LAB_DIR/vrrpd-v$version.yaml" ;;
        keepalived)
            # Foreground, VRRP only, logs on the console, own pid files.
            lab_spawn "$host" "$dir/keepalived.log" \
                keepalived --dont-fork --log-console --log-detail --no-syslog --vrrp \
                --use-file "$LAB_DIR/keepalived-v$version-$host.conf" \
                --pid "$dir/keepalived.pid" --vrrp_pid "$dir/keepalived-vrrp.pid"
            ;;
    esac
}

# Kills whatever runs in both hosts and removes what a killed daemon leaves
# behind: its VIP (keepalived does not remove it at its next start) and its
# pid files (keepalived refuses to start if a pid in them is alive again).
reset_lab() {
    local host
    for host in ha1 ha2; do
        lab_kill_host "$host" || lab_fail "cannot stop the daemons in ${LAB_NAMESPACE[$host]}"
        lab_remove_address "$host" "$LAB_VIP/$LAB_VIP_LEN"
        rm -f "$LAB_DIR/$host"/*.pid
    done
}

# One repetition: DAEMON pair, VERSION, ADVERT_INT, SIGNAL (KILL or TERM).
# Appends the failover time (ms) to FAILOVER_MS and the memory (KiB) of
# both nodes to MEMORY_KIB.
run_once() {
    local daemon=$1 version=$2 advert_int=$3 signal=$4
    local key="$daemon $version $signal" started_us master_pid pids backup_pids
    reset_lab
    start_address_monitor ha1
    start_address_monitor ha2
    started_us=$(lab_now_us)
    start_daemon "$daemon" ha1 "$version"
    master_pid=$LAB_PID
    start_daemon "$daemon" ha2 "$version"
    lab_poll "$CONVERGE_TIMEOUT_MS" lab_sole_vip_holder ha1 ha2 ||
        lab_fail "$daemon v$version: ha1 did not become the sole holder of $LAB_VIP within $((CONVERGE_TIMEOUT_MS / 1000)) s of the start"
    lab_poll 1000 vip_event_on ha1 added ||
        lab_fail "$daemon v$version: ip monitor on ha1 did not report $LAB_VIP being added (see $LAB_DIR/ha1/addresses.log)"
    # Stop the master a fixed 2.25 intervals after it added the VIP: a
    # quarter interval after its third advert, away from the advert edges,
    # so that every run (and both daemons) stops it at the same phase.
    local converged_ms kill_at_us=$((VIP_EVENT_US + $(scaled "$advert_int" 2250000)))
    converged_ms=$(lab_ms_between "$started_us" "$VIP_EVENT_US")
    mapfile -t pids < <(daemon_pids ha1)
    mapfile -t backup_pids < <(daemon_pids ha2)
    local field master_kib backup_kib memory="KiB master/backup:"
    for field in "${MEMORY_FIELDS[@]}"; do
        master_kib=$(lab_memory_kib "$field" "${pids[@]}")
        backup_kib=$(lab_memory_kib "$field" "${backup_pids[@]}")
        MEMORY_KIB["$daemon master $field"]+=" $master_kib"
        MEMORY_KIB["$daemon backup $field"]+=" $backup_kib"
        memory+=" $field $master_kib/$backup_kib"
    done
    lab_sole_vip_holder ha1 ha2 || lab_fail "$daemon v$version: ha1 lost $LAB_VIP before it was stopped (flapping?)"
    sleep_until "$kill_at_us"
    # Read the clock without forking: the signal follows at once.
    local stopped_us=${EPOCHREALTIME/[.,]/}
    case $signal in
        # A crash: freeze every process of the master at once (so that
        # keepalived's parent cannot react to its child's death), then kill.
        KILL)
            kill -STOP "${pids[@]}"
            lab_signal_and_wait KILL 2000 "${pids[@]}" || lab_fail "$daemon on ha1 survived SIGKILL for 2 s"
            ;;
        # A clean stop, sent where an init system sends it: the main process.
        TERM) kill -TERM "$master_pid" ;;
    esac
    lab_poll "$FAILOVER_TIMEOUT_MS" lab_holds_vip ha2 ||
        lab_fail "$daemon v$version SIG$signal: ha2 did not take $LAB_VIP within $((FAILOVER_TIMEOUT_MS / 1000)) s"
    local polled_ms took_ms
    polled_ms=$(lab_ms_between "$stopped_us" "$LAB_SEEN_US")
    lab_poll 1000 vip_event_on ha2 added ||
        lab_fail "$daemon v$version SIG$signal: ip monitor on ha2 did not report $LAB_VIP being added (see $LAB_DIR/ha2/addresses.log)"
    took_ms=$(lab_ms_between "$stopped_us" "$VIP_EVENT_US")
    FAILOVER_MS[$key]+=" $took_ms"
    # What became of the old master's copy of the VIP.
    local released
    if [[ $signal == TERM ]]; then
        lab_poll 1000 vip_event_on ha1 removed ||
            lab_fail "$daemon v$version SIGTERM: ha1 still holds $LAB_VIP 1 s after ha2 took it"
        released="ha1 released it at $(lab_ms_between "$stopped_us" "$VIP_EVENT_US") ms"
    elif lab_holds_vip ha1; then
        released="the dead ha1 still holds it"
    else
        released="the dead ha1 left none"
    fi
    printf '  %-10s v%s advert_int %-3s SIG%-4s %5d ms (polled %d; %s)   start to master %d ms; %s\n' \
        "$daemon" "$version" "$advert_int" "$signal" "$took_ms" "$polled_ms" "$released" "$converged_ms" "$memory"
}

# Prints the median of whole numbers.
median() {
    printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2) }'
}

maximum() {
    printf '%s\n' "$@" | sort -n | tail -n 1
}

ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

bench_vrrp() {
# Failover times, "DAEMON VERSION SIGNAL" -> " ms ms ...", and memory,
# "DAEMON ROLE FIELD" -> " KiB KiB ...".
declare -A FAILOVER_MS=() MEMORY_KIB=()

for scenario in "${SCENARIOS[@]}"; do
    read -r version advert_int <<<"$scenario"
    lab_write_vrrpd_config "$LAB_DIR/vrrpd-v$version.yaml" "$version" "$advert_int" \
        ha1=$MASTER_PRIORITY ha2=$BACKUP_PRIORITY
    write_keepalived_config "$LAB_DIR/keepalived-v$version-ha1.conf" "$version" "$advert_int" $MASTER_PRIORITY ha1
    write_keepalived_config "$LAB_DIR/keepalived-v$version-ha2.conf" "$version" "$advert_int" $BACKUP_PRIORITY ha2
done
mkdir -p "$LAB_DIR/ha1" "$LAB_DIR/ha2"

keepalived_version=$(keepalived --version 2>&1)
keepalived_version=${keepalived_version%%$'\n'*}
vrrpd_version=$("$LAB_VRRPD" --version)
echo "failover.sh: $vrrpd_version against $keepalived_version, $repetitions repetitions;" \
    "kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

for scenario in "${SCENARIOS[@]}"; do
    read -r version advert_int <<<"$scenario"
    for signal in "${SIGNALS[@]}"; do
        for ((run = 1; run <= repetitions; run++)); do
            # Alternate which daemon goes first, so that a slow spell of
            # the machine does not always hit the same one.
            if ((run % 2)); then order=("${DAEMONS[@]}"); else order=(keepalived vrrpd); fi
            for daemon in "${order[@]}"; do
                run_once "$daemon" "$version" "$advert_int" "$signal"
            done
        done
    done
done
reset_lab

# The expected failover, in ms. SIGKILL: Master_Down_Interval (3 intervals
# + skew) minus the 0.25 interval between the last advert and the kill.
# SIGTERM: the backup's skew, (256 - priority) / 256 intervals.
expected_ms() {
    local advert_int=$1 signal=$2 skew_ms
    skew_ms=$(awk -v a="$advert_int" -v p=$BACKUP_PRIORITY 'BEGIN { printf "%d", (256 - p) / 256 * a * 1000 + 0.5 }')
    case $signal in
        KILL) echo $(($(scaled "$advert_int" 2750) + skew_ms)) ;;
        TERM) echo "$skew_ms" ;;
    esac
}

echo
echo "Failover: from the signal to the master until the backup holds the VIP, in ms ($repetitions runs each)"
echo
echo "| scenario | expected | vrrpd median | vrrpd max | keepalived median | keepalived max | ratio of medians (vrrpd / keepalived) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for scenario in "${SCENARIOS[@]}"; do
    read -r version advert_int <<<"$scenario"
    for signal in "${SIGNALS[@]}"; do
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        {
            vrrpd_median=$(median ${FAILOVER_MS["vrrpd $version $signal"]})
            vrrpd_max=$(maximum ${FAILOVER_MS["vrrpd $version $signal"]})
            keepalived_median=$(median ${FAILOVER_MS["keepalived $version $signal"]})
            keepalived_max=$(maximum ${FAILOVER_MS["keepalived $version $signal"]})
        }
        echo "| VRRPv$version, advert_int $advert_int s, SIG$signal | $(expected_ms "$advert_int" "$signal") |" \
            "$vrrpd_median | $vrrpd_max | $keepalived_median | $keepalived_max |" \
            "$(ratio "$vrrpd_median" "$keepalived_median") |"
    done
done

echo
echo "Memory after convergence, in KiB (median of $((repetitions * ${#SCENARIOS[@]} * ${#SIGNALS[@]})) runs;" \
    "keepalived: its parent and VRRP child together)"
echo
echo "| node, measure | vrrpd | keepalived | ratio (vrrpd / keepalived) |"
echo "|---|---:|---:|---:|"
for role in master backup; do
    for field in "${MEMORY_FIELDS[@]}"; do
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        {
            vrrpd_memory=$(median ${MEMORY_KIB["vrrpd $role $field"]})
            keepalived_memory=$(median ${MEMORY_KIB["keepalived $role $field"]})
        }
        echo "| $role, $field | $vrrpd_memory | $keepalived_memory | $(ratio "$vrrpd_memory" "$keepalived_memory") |"
    done
done
}

# One repetition of the whole service with VERSION and ADVERT_INT: a fresh
# pair, ha1 serving, a few files stored, then ha1's link cut and every
# process of ha1 SIGKILLed, 1 s + 2.25 advert intervals after ha1 first
# answered HTTP (at no particular phase of its advert cycle); appends the
# four times (ms) to SERVICE_MS.
service_once() {
    local version=$1 advert_int=$2 key="$1 $2" host k took_us kill_at_us killed_us
    for host in ha1 ha2; do
        lab_kill_host "$host" || lab_fail "cannot stop what runs in ${LAB_NAMESPACE[$host]}"
        lab_remove_address "$host" "$LAB_VIP/$LAB_VIP_LEN"
        ip -n "${LAB_NAMESPACE[$host]}" link set eth0 up
    done
    lab_storage_config "$version" "$advert_int" ha1 ha2
    lab_storage_init ha1 ha2 >/dev/null
    lab_storage_start_vrrpd ha1
    lab_poll "$CONVERGE_TIMEOUT_MS" lab_storage_http_answers client ||
        lab_fail "v$version: ha1 did not serve within $((CONVERGE_TIMEOUT_MS / 1000)) s"
    took_us=${EPOCHREALTIME/[.,]/}
    lab_storage_start_vrrpd ha2
    for ((k = 1; k <= 5; k++)); do
        head -c 65536 /dev/urandom >"$LAB_DIR/upload"
        ip netns exec "${LAB_NAMESPACE[client]}" curl -sS --fail -m 10 -o /dev/null -H "Expect:" \
            -T "$LAB_DIR/upload" "http://$LAB_VIP/file-$k" || lab_fail "v$version: an upload failed"
    done
    # ha2 must be BACKUP (it heard ha1) before ha1 dies.
    lab_poll "$CONVERGE_TIMEOUT_MS" backup_settled ha2 || lab_fail "v$version: ha2 did not settle as BACKUP"
    kill_at_us=$((took_us + $(scaled "$advert_int" 2250000) + 1000000))
    sleep_until "$kill_at_us"
    killed_us=${EPOCHREALTIME/[.,]/}
    ip -n "${LAB_NAMESPACE[ha1]}" link set eth0 down
    lab_kill_host ha1 || lab_fail "a process of ha1 survived SIGKILL"
    lab_storage_failover_timeline ha2 client "$killed_us" "$FAILOVER_TIMEOUT_MS" ||
        lab_fail "v$version: the service did not fail over within $((FAILOVER_TIMEOUT_MS / 1000)) s (seen: ${!LAB_FAILOVER_MS[*]})"
    local what line="  service v$version advert_int $advert_int:"
    for what in vip primary mounted http; do
        SERVICE_MS["$key $what"]+=" ${LAB_FAILOVER_MS[$what]}"
        line+=" $what ${LAB_FAILOVER_MS[$what]} ms"
    done
    echo "$line"
}

backup_settled() {
    [[ $(jq -r '.instances[0].state' "$LAB_DIR/$1/run/vrrp/state.json" 2>/dev/null) == BACKUP ]]
}

bench_service() {
    declare -gA SERVICE_MS=()
    local scenario version advert_int run what row
    echo "Whole service: $("$LAB_VRRPD" --version), $repetitions repetitions per scenario"
    for scenario in "${SCENARIOS[@]}"; do
        read -r version advert_int <<<"$scenario"
        for ((run = 1; run <= repetitions; run++)); do
            service_once "$version" "$advert_int"
        done
    done
    for host in ha1 ha2; do
        lab_kill_host "$host" || true
    done
    echo
    echo "Whole service: from the hard kill of the master's host, in ms (median / max of $repetitions runs)"
    echo
    echo "| scenario | Master_Down_Interval | (a) VIP moved | (b) Primary | (c) mounted | (d) HTTP answers |"
    echo "|---|---:|---:|---:|---:|---:|"
    for scenario in "${SCENARIOS[@]}"; do
        read -r version advert_int <<<"$scenario"
        row="| VRRPv$version, advert_int $advert_int s | $(master_down_ms "$advert_int") |"
        for what in vip primary mounted http; do
            # shellcheck disable=SC2086 # the lists are space-separated numbers
            row+=" $(median ${SERVICE_MS["$version $advert_int $what"]}) / $(maximum ${SERVICE_MS["$version $advert_int $what"]}) |"
        done
        echo "$row"
    done
}

# Master_Down_Interval of the backup (priority 100), in ms: 3 intervals +
# (256 - 100) / 256 of one.
master_down_ms() {
    awk -v a="$1" -v p=$BACKUP_PRIORITY 'BEGIN { printf "%d", (3 + (256 - p) / 256) * a * 1000 + 0.5 }'
}

lab_init bench-failover
lab_require_root
lab_install_packages iproute2 keepalived jq libnbd-bin fuse3 e2fsprogs python3 curl util-linux psmisc
if [[ $part == vrrp ]]; then lab_build_vrrpd; else lab_build_all; fi
lab_up ha1 ha2 client
echo "failover.sh: kernel $(uname -r), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A MONITOR_PID=()
if [[ $part != service ]]; then
    bench_vrrp
fi
if [[ $part != vrrp ]]; then
    bench_service
fi
