# shellcheck shell=bash disable=SC2034  # the variables set here are used by promote and demote
# lib.sh: what the promote and demote hooks share: their options, the
# paths of what they create, each step's "already done?" test, and the
# reporting of which step failed. Sourced by scripts/hooks/promote and
# scripts/hooks/demote; not a command of its own.
#
# State of one resource's exposure lives in $HAPAIR_RUN_DIR/hooks/RESOURCE/:
#   fuse/nbd       the NBD export as a file (nbdfuse's mount point is fuse/)
#   nbdfuse.pid    written by nbdfuse once it serves
#   nbdfuse.log    nbdfuse's output
#   nbd-device     the /dev/nbdN that nbd-client attached, when that way

# The hook's name (promote or demote), for every message.
HOOK_NAME=$(basename "$0")

usage_common() {
    cat <<EOF
Options (each also settable by the environment variable shown):
  -c, --config DIR      haadm's configuration directory      HAPAIR_CONFIG_DIR (haadm's default)
      --node NAME       this node's name in the configuration HAPAIR_NODE (haadm's default)
      --run-dir DIR     replicad's run directory               HAPAIR_RUN_DIR (/run/hapair)
      --haadm PATH      the haadm program                      HAPAIR_HAADM (haadm)
      --expose HOW      auto, nbd (nbd-client) or fuse (nbdfuse + loop device)
                                                               HAPAIR_EXPOSE (auto)
      --retries N       tries of haadm primary/secondary while the peer or a
                        client still holds on                  HAPAIR_RETRIES (10)
      --retry-delay S   seconds between those tries            HAPAIR_RETRY_DELAY (1)
  -h, --help            this help

auto exposes the volume with nbd-client when the kernel has the nbd module
(/sys/module/nbd) and nbd-client is installed, otherwise with nbdfuse and a
loop device. replicad serves the Primary's volume on RUN_DIR/RESOURCE.nbd.

Run by vrrpd (HAPAIR_STATE_FILE, HAPAIR_INSTANCE or HAPAIR_GROUP, and
HAPAIR_STATE in the environment), the hook reads the instance's state
(haadm vrrp status) before each try of haadm primary/secondary, and gives
up with exit 3 when vrrpd has moved on: a promote run for MASTER once the
instance is no longer MASTER, a demote once it is MASTER again. The hook of
the new state is queued behind it and does what is wanted now. Run by hand,
for STOP, or when the state file cannot be read, it retries as above.

Exit codes: 0 done (also when every step was already done), 1 a step
failed (the message names it and why), 2 usage error, 3 out of date:
vrrpd moved on while the hook was running (see above).
EOF
}

# The exit code of a hook that gave up because vrrpd moved on.
EXIT_OUT_OF_DATE=3

HAPAIR_RUN_DIR=${HAPAIR_RUN_DIR:-/run/hapair}
HAPAIR_HAADM=${HAPAIR_HAADM:-haadm}
HAPAIR_EXPOSE=${HAPAIR_EXPOSE:-auto}
HAPAIR_RETRIES=${HAPAIR_RETRIES:-10}
HAPAIR_RETRY_DELAY=${HAPAIR_RETRY_DELAY:-1}
HAPAIR_CONFIG_DIR=${HAPAIR_CONFIG_DIR:-}
HAPAIR_NODE=${HAPAIR_NODE:-}

# Prints a progress line: "promote r0: mount: /srv/data mounted".
say() {
    printf '%s %s: %s\n' "$HOOK_NAME" "${RESOURCE:-?}" "$*"
}

# Ends the hook with exit code CODE: STEP failed, and why.
fail_with() {
    local code=$1 step=$2
    shift 2
    printf '%s %s: step %s failed: %s\n' "$HOOK_NAME" "${RESOURCE:-?}" "$step" "$*" >&2
    exit "$code"
}

# Ends the hook: STEP failed, and why. Exit 1.
fail() {
    fail_with 1 "$@"
}

usage_error() {
    printf '%s: %s (see %s --help)\n' "$HOOK_NAME" "$*" "$HOOK_NAME" >&2
    exit 2
}

# Parses the common options and the two positional arguments; what
# follows them (after an optional --) is the service command, in SERVICE.
# The caller's usage function is $1.
parse_arguments() {
    local usage=$1
    shift
    while (($# > 0)); do
        case $1 in
        -h | --help)
            "$usage"
            exit 0
            ;;
        -c | --config | --node | --run-dir | --haadm | --expose | --retries | --retry-delay)
            (($# >= 2)) || usage_error "$1 needs a value"
            case $1 in
            -c | --config) HAPAIR_CONFIG_DIR=$2 ;;
            --node) HAPAIR_NODE=$2 ;;
            --run-dir) HAPAIR_RUN_DIR=$2 ;;
            --haadm) HAPAIR_HAADM=$2 ;;
            --expose) HAPAIR_EXPOSE=$2 ;;
            --retries) HAPAIR_RETRIES=$2 ;;
            --retry-delay) HAPAIR_RETRY_DELAY=$2 ;;
            esac
            shift 2
            ;;
        --)
            shift
            break
            ;;
        -*) usage_error "unknown option $1" ;;
        *) break ;;
        esac
    done
    (($# >= 2)) || usage_error "RESOURCE and MOUNTPOINT are required"
    RESOURCE=$1
    MOUNTPOINT=$2
    shift 2
    [[ ${1:-} == -- ]] && shift
    SERVICE=("$@")
    [[ $HAPAIR_RETRIES =~ ^[0-9]+$ ]] || usage_error "--retries must be a whole number, not '$HAPAIR_RETRIES'"
    [[ $HAPAIR_RETRY_DELAY =~ ^[0-9]+([.][0-9]+)?$ ]] ||
        usage_error "--retry-delay must be a number of seconds, not '$HAPAIR_RETRY_DELAY'"
    case $HAPAIR_EXPOSE in
    auto | nbd | fuse) ;;
    *) usage_error "--expose must be auto, nbd or fuse, not '$HAPAIR_EXPOSE'" ;;
    esac
    [[ $MOUNTPOINT == /* ]] || usage_error "MOUNTPOINT must be an absolute path, not '$MOUNTPOINT'"
    MOUNTPOINT=${MOUNTPOINT%/}
    STATE_DIR=$HAPAIR_RUN_DIR/hooks/$RESOURCE
    FUSE_DIR=$STATE_DIR/fuse
    FUSE_FILE=$FUSE_DIR/nbd
    FUSE_PID_FILE=$STATE_DIR/nbdfuse.pid
    NBD_DEVICE_FILE=$STATE_DIR/nbd-device
    NBD_SOCKET=$HAPAIR_RUN_DIR/$RESOURCE.nbd
}

# Runs haadm with the configured options; its output goes to ours.
haadm() {
    local options=(--run-dir "$HAPAIR_RUN_DIR")
    [[ -n $HAPAIR_CONFIG_DIR ]] && options+=(-c "$HAPAIR_CONFIG_DIR")
    [[ -n $HAPAIR_NODE ]] && options+=(--node "$HAPAIR_NODE")
    "$HAPAIR_HAADM" "${options[@]}" "$@"
}

# The resource's role (Primary/Secondary); fails with haadm's code.
current_role() {
    haadm role "$RESOURCE"
}

# When vrrpd ran this hook and has moved on since, sets MOVED_ON to why
# the hook is out of date and returns 0: a hook run for MASTER (promote)
# once the instance (or sync group) is no longer MASTER, one run for
# BACKUP or FAULT (demote) once it is MASTER again. vrrpd queued the hook
# of the new state behind this one. Returns 1 otherwise: run by hand (the
# variables unset), run for STOP (no hook follows that one), or the state
# unknown (the file unreadable, the name not in it; said once).
vrrpd_moved_on() {
    local name=${HAPAIR_INSTANCE:-${HAPAIR_GROUP:-}} options=() now code=0
    [[ -n ${HAPAIR_STATE_FILE:-} && -n $name && -n ${HAPAIR_STATE:-} && $HAPAIR_STATE != STOP ]] ||
        return 1
    [[ -z ${HAPAIR_INSTANCE:-} ]] && options=(--group)
    now=$(haadm vrrp status "${options[@]}" --state-file "$HAPAIR_STATE_FILE" "$name" 2>&1) || code=$?
    if ((code != 0)); then
        if [[ -z ${VRRP_STATE_UNKNOWN:-} ]]; then
            say "cannot read $name's state from vrrpd (haadm exited with $code: $now): retrying as if run by hand"
            VRRP_STATE_UNKNOWN=1
        fi
        return 1
    fi
    if [[ $HAPAIR_STATE == MASTER && $now != MASTER ]]; then
        MOVED_ON="$name left MASTER (now $now): this $HOOK_NAME is out of date; giving up, the demote hook follows"
    elif [[ $HAPAIR_STATE != MASTER && $now == MASTER ]]; then
        MOVED_ON="$name is MASTER again (this $HOOK_NAME ran for $HAPAIR_STATE): it is out of date; giving up, the promote hook follows"
    else
        return 1
    fi
}

# Runs `haadm ROLE RESOURCE` until it succeeds, retrying while haadm
# answers "state change refused" (11: the peer is still Primary, or a
# client still holds the volume). Any other failure ends at once. Sets
# HAADM_OUTPUT to what the last try printed and returns its exit code.
# Before each try, ends the hook (exit 3, step ROLE) if vrrpd moved on.
change_role() {
    local role=$1 try code
    for ((try = 1; ; try++)); do
        if vrrpd_moved_on; then
            fail_with "$EXIT_OUT_OF_DATE" "$role" "$MOVED_ON"
        fi
        code=0
        HAADM_OUTPUT=$(haadm "$role" "$RESOURCE" 2>&1) || code=$?
        if ((code != 11 || try > HAPAIR_RETRIES)); then
            return "$code"
        fi
        say "$role: refused (try $try of $((HAPAIR_RETRIES + 1))), retrying in ${HAPAIR_RETRY_DELAY}s: $HAADM_OUTPUT"
        sleep "$HAPAIR_RETRY_DELAY"
    done
}

# True when MOUNTPOINT has a file system mounted on it.
is_mounted() {
    findmnt --mountpoint "$1" >/dev/null 2>&1
}

# The source device of the mount on $1 (empty if none).
mount_source() {
    findmnt --noheadings --output SOURCE --mountpoint "$1" 2>/dev/null | tail -n 1
}

# The loop devices whose backing file is the export's file, from sysfs:
# unlike losetup --associated, this never touches the FUSE file, so it
# answers even when nbdfuse or replicad hangs.
fuse_loop_devices() {
    local backing name
    for backing in /sys/block/loop*/loop/backing_file; do
        [[ -r $backing && $(<"$backing") == "$FUSE_FILE" ]] || continue
        name=${backing#/sys/block/}
        echo "/dev/${name%%/*}"
    done
}

# The nbd device nbd-client attached for this resource, if still attached.
attached_nbd_device() {
    local device
    [[ -f $NBD_DEVICE_FILE ]] || return 0
    device=$(<"$NBD_DEVICE_FILE")
    if [[ -e /sys/block/${device#/dev/}/pid ]]; then
        echo "$device"
    fi
}

# The block devices that are this resource's volume here, one a line.
exposed_devices() {
    attached_nbd_device
    fuse_loop_devices
}

# The pid nbdfuse wrote, if that process still runs.
nbdfuse_pid() {
    local pid
    [[ -f $FUSE_PID_FILE ]] || return 0
    pid=$(<"$FUSE_PID_FILE")
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        echo "$pid"
    fi
}

# Waits up to $2 seconds (tenths allowed) for process $1 to exit.
wait_for_exit() {
    local pid=$1 tenths
    tenths=$(awk -v s="$2" 'BEGIN { printf "%d", s * 10 }')
    while ((tenths-- > 0)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    ! kill -0 "$pid" 2>/dev/null
}

# Runs the service command, if one was given, as step "service".
run_service() {
    local what=$1
    if ((${#SERVICE[@]} == 0)); then
        say "service: none given"
        return
    fi
    local code=0
    "${SERVICE[@]}" || code=$?
    ((code == 0)) || fail service "'${SERVICE[*]}' exited with $code"
    say "service: ${what} ('${SERVICE[*]}')"
}
