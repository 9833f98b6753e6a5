# shellcheck shell=bash
# Shared helpers for the test-server scripts (scripts/{mail,sql,ad,scim}/).
# Sourced, not run:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/../lib/servers.sh"
#
# Messages are prefixed with the calling script's name ("install.sh: ...",
# "down.sh: ...", "up.sh: ..."), as the scripts always did.  The callers run
# with `set -euo pipefail`; the helpers are written to work under it.

srv_prog=${0##*/}

# --- installing --------------------------------------------------------------

# have CMD: CMD is on PATH.
have() { command -v "$1" >/dev/null 2>&1; }

# need_root WHY: exit 1 unless running as root.
need_root() {
    if [[ $(id -u) -ne 0 ]]; then
        echo "$srv_prog: must run as root ($1)" >&2
        exit 1
    fi
}

# apt_install PKG...: install Debian packages without starting any daemon
# system-wide and without upgrading anything already installed.
#  - a policy-rc.d that denies service starts is put in place while apt runs
#    (only when there is none; removed again afterwards, also on failure);
#  - the package lists are fetched only when they never were;
#  - --no-install-recommends --no-upgrade, non-interactive.
# Uses the EXIT trap while it runs (the install scripts set none of their own).
srv_policy=/usr/sbin/policy-rc.d
srv_created_policy=0
srv_remove_policy() {
    if [[ $srv_created_policy -eq 1 ]]; then
        rm -f "$srv_policy"
        srv_created_policy=0
    fi
}
apt_install() {
    # Keep maintainer scripts from starting daemons (no systemd here, but
    # sysvinit scripts would otherwise start them system-wide).
    if [[ ! -e $srv_policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$srv_policy"
        chmod 755 "$srv_policy"
        srv_created_policy=1
    fi
    trap srv_remove_policy EXIT

    # Only refresh the package lists when they were never fetched.
    if ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
        apt-get update
    fi

    # Lists fetched long ago can name package versions the mirror no longer has: refresh
    # them and try once more.
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --no-upgrade "$@"; then
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends --no-upgrade "$@"
    fi

    srv_remove_policy
    trap - EXIT
}

# install_missing WHAT PKG...: the body of an install.sh once it has listed
# the packages whose binaries are missing.  With none, says "WHAT already
# installed" and exits 0 (nothing else runs); otherwise installs them with
# apt_install and says "done".
install_missing() {
    local what=$1
    shift
    if [[ $# -eq 0 ]]; then
        echo "$srv_prog: $what already installed"
        exit 0
    fi
    echo "$srv_prog: installing $*"
    apt_install "$@"
    echo "$srv_prog: done"
}

# --- stopping recorded pids --------------------------------------------------
#
# A down.sh resolves its STATE_DIR, hands each recorded pid to
# srv_stop_pidfile (which checks that the pid still is ours before signalling
# it and its children), then calls srv_finish_stop, which waits for all of
# them, SIGKILLs what is left after a timeout, removes the pid files and
# reports.  srv_signalled lists "name(pid)" per instance signalled (what is
# reported); srv_pid and srv_nkids hold the last one's pid and number of
# children.

srv_targets=()
srv_signalled=()
srv_pid=
srv_nkids=0

# srv_state_dir DIR: set STATE_DIR to DIR's physical path.  Returns 1 (after
# saying so) when DIR does not exist: nothing to stop, the caller exits 0.
srv_state_dir() {
    STATE_DIR=${1%/}
    if [[ ! -d $STATE_DIR ]]; then
        echo "$srv_prog: $STATE_DIR does not exist, nothing to stop" >&2
        return 1
    fi
    STATE_DIR=$(cd "$STATE_DIR" && pwd -P)
}

# srv_descendants PID: all descendants of PID (children first, recursively).
srv_descendants() {
    local pid=$1 child
    for child in $(ps -o pid= --ppid "$pid" 2>/dev/null || true); do
        echo "$child"
        srv_descendants "$child"
    done
}

# srv_alive: the targets still running (a zombie still has /proc/PID but is
# gone for our purpose), space-separated.
srv_alive() {
    local pid left=()
    for pid in "${srv_targets[@]}"; do
        if [[ -e /proc/$pid ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null; then
            left+=("$pid")
        fi
    done
    echo "${left[@]}"
}

# srv_stop_pidfile NAME SIG PIDFILE IS_OURS [ARG...]: when PIDFILE exists and
# `IS_OURS PID ARG...` confirms the pid still is this instance's NAME, send
# it SIG and remember it and its children for srv_finish_stop.  Otherwise
# (stale pid file) say so; nothing is signalled.
srv_stop_pidfile() {
    local name=$1 sig=$2 pidfile=$3 is_ours=$4 pid kids
    shift 4
    [[ -f $pidfile ]] || return 0
    pid=$(tr -dc '0-9' <"$pidfile")
    if "$is_ours" "$pid" "$@"; then
        # Remember the children too, so we can wait for them to be gone.
        mapfile -t kids < <(srv_descendants "$pid")
        srv_targets+=("$pid" "${kids[@]}")
        srv_pid=$pid
        srv_nkids=${#kids[@]}
        kill "-$sig" "$pid" 2>/dev/null || true
        srv_signalled+=("$name($pid)")
    else
        echo "$srv_prog: $name pid '$pid' from $pidfile is not running (stale pid file)" >&2
    fi
}

# srv_wait_stopped SECONDS: wait up to SECONDS for the targets to exit
# (polled every 50 ms: a stop then takes ~0.1 s instead of the ~1-2.5 s of
# once-a-second polling), then SIGKILL what is left and wait up to 5 s more.
# Returns 1 (after saying so) when something still runs.
srv_wait_stopped() {
    local secs=$1 left
    [[ ${#srv_targets[@]} -gt 0 ]] || return 0
    for _ in $(seq 1 $((secs * 20))); do
        [[ -z $(srv_alive) ]] && break
        sleep 0.05
    done
    left=$(srv_alive)
    if [[ -n $left ]]; then
        echo "$srv_prog: still running after $secs s, sending SIGKILL to: $left" >&2
        # shellcheck disable=SC2086  # word splitting of the pid list is intended
        kill -KILL $left 2>/dev/null || true
        for _ in $(seq 1 100); do
            [[ -z $(srv_alive) ]] && break
            sleep 0.05
        done
    fi
    left=$(srv_alive)
    if [[ -n $left ]]; then
        echo "$srv_prog: could not stop: $left" >&2
        return 1
    fi
}

# srv_finish_stop SECONDS PIDFILE...: srv_wait_stopped SECONDS, then remove
# the pid files and report what was stopped (or that nothing was running;
# also when the pid files were stale).  Returns 1 when something could not
# be stopped (pid files kept).
srv_finish_stop() {
    local secs=$1
    shift
    srv_wait_stopped "$secs" || return 1
    rm -f "$@"
    if [[ ${#srv_signalled[@]} -gt 0 ]]; then
        echo "$srv_prog: stopped ${srv_signalled[*]}" >&2
    else
        echo "$srv_prog: nothing was running for $STATE_DIR" >&2
    fi
}

# srv_stop_previous DOWN_SH DIR: from an up.sh, stop the instance DOWN_SH
# knows in DIR; exit 1 when that fails.  Reports what was stopped as
# "up.sh: previous instance: stopped ...".
srv_stop_previous() {
    local down_sh=$1 dir=$2 out
    if ! out=$("$down_sh" "$dir" 2>&1); then
        echo "$out" >&2
        echo "$srv_prog: could not stop the previous instance in $dir" >&2
        exit 1
    fi
    if [[ $out == *"stopped "* ]]; then
        echo "${out//down.sh: /$srv_prog: previous instance: }" >&2
    fi
}
