#!/usr/bin/env bash
# The real-kernel fault suite (docs/TESTING.md, "Real-kernel fault suite").
#
#   tests/kernel/run.sh [--only name,name] [--table FILE]
#
# Needs root, network namespaces, `ip`, `ss`, `iptables` and `arping`; installs the missing Debian
# packages (iproute2, iptables, iputils-arping) when it can. Without them it prints what is missing
# and exits 0 (skipped). Every namespace it creates is named tkern<pid>-..., and every one of them
# (with its veths, bridge, iptables rules and sysctls) is deleted on exit, including on Ctrl-C.
# Nothing outside those namespaces is touched, except that missing packages are installed.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() {
  printf 'kernel fault suite SKIPPED: %s\n' "$*"
  exit 0
}

PREFIX="tkern$$"
ORCH=""

sweep_namespaces() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^${PREFIX}-" || true); do
    # A namespace lives on while a process is inside it: stop the suite's own role processes.
    for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
      kill -9 "$pid" 2>/dev/null || true
    done
    ip netns del "$ns" 2>/dev/null || true
  done
}

cleanup() {
  if [[ -n $ORCH ]]; then
    # The orchestrator runs in its own process group: stop it and every `ip`/role process it
    # started, and wait, so that no `ip netns add` can still create a namespace after the sweep.
    kill -TERM -- "-$ORCH" 2>/dev/null || true
    wait "$ORCH" 2>/dev/null || true
    kill -KILL -- "-$ORCH" 2>/dev/null || true
  fi
  sweep_namespaces
  sweep_namespaces
}

[[ $(id -u) -eq 0 ]] || skip "needs root (network namespaces, iptables)"

# Debian packages for the commands that are missing, installed only when apt-get is there.
declare -A PKG=([ip]=iproute2 [ss]=iproute2 [iptables]=iptables [arping]=iputils-arping)
missing=()
for cmd in ip ss iptables arping; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKG[$cmd]}")
done
if ((${#missing[@]})); then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing[*]} ..."
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
      >/dev/null 2>&1 || skip "could not install ${missing[*]} with apt-get"
  else
    skip "missing ${missing[*]} and no apt-get to install them"
  fi
fi
for cmd in ip ss iptables arping; do
  command -v "$cmd" >/dev/null 2>&1 || skip "'$cmd' is still missing"
done

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Can this kernel do what the suite needs? One throwaway namespace answers.
probe="${PREFIX}-probe"
ip netns add "$probe" 2>/dev/null || skip "cannot create network namespaces (ip netns add failed)"
ip -n "$probe" link add eth0 type veth peer name eth1 2>/dev/null || skip "no veth support"
ip netns exec "$probe" iptables -w -A INPUT -m statistic --mode random --probability 0.5 \
  -j DROP 2>/dev/null || skip "iptables in a namespace (with the statistic match) does not work"
ip netns exec "$probe" iptables -w -A INPUT -p tcp -j REJECT --reject-with tcp-reset \
  2>/dev/null || skip "iptables REJECT --reject-with tcp-reset does not work"
ip netns del "$probe"

export CARGO_TERM_COLOR=never
echo "building tether-kernel (release) ..."
cargo build --release -q -p tether-kernel
target="${CARGO_TARGET_DIR:-target}"
exe="$target/release/tether-kernel"
[[ $exe = /* ]] || exe="$PWD/$exe"

# In the background so that a signal to this script runs the trap at once (bash defers traps
# while a foreground command runs); `wait` passes its exit status on.
setsid "$exe" run --prefix "$PREFIX" "$@" &
ORCH=$!
wait "$ORCH"
