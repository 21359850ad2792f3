# shellcheck shell=bash
# Shared by scripts/dev-setup and scripts/install (sourced, not run): the
# Debian packages a fresh machine lacks, slow steps that keep saying what they
# do, and the wsq wheel on machines PyPI has no wheel for (aarch64: a Pi).
# The caller defines say() and die(), and may define announce() for what is
# said even when it was asked to be quiet (a slow step; default: say).

WSQ_VERSION=0.9

declare -F announce >/dev/null || announce() { say "$@"; }

# python_ready: python3 exists and can make a virtual environment with pip
python_ready() {
  command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1
}

# needs_wsq_build: PyPI ships wsq wheels for x86-64 only; elsewhere we build it
needs_wsq_build() {
  [ "$(uname -m)" != "x86_64" ]
}

# build_packages: the Debian packages needed to compile a C extension here
build_packages() {
  local pkgs=()
  command -v gcc >/dev/null 2>&1 || pkgs+=(gcc)
  if ! python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1; then
    pkgs+=(python3-dev)
  fi
  echo "${pkgs[@]}"
}

# apt_install PKG...: install Debian packages without questions
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "missing Debian packages $* and no apt-get here; install them by hand"
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  announce "installing Debian packages: $*"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# slowly LABEL CMD...: run a long step, saying every 30 s that it still runs;
# its output goes to a log that is shown only when the step fails.
slowly() {
  local label=$1 log started pid rc=0
  shift
  log=$(mktemp)
  started=$SECONDS
  announce "$label ..."
  "$@" >"$log" 2>&1 &
  pid=$!
  while ! wait_for "$pid" 30; do
    announce "  still $label ($((SECONDS - started)) s)"
  done
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    rm -f "$log"
    die "failed: $label (the last lines of its output are above)"
  fi
  rm -f "$log"
  announce "  done in $((SECONDS - started)) s"
}

# wait_for PID SECONDS: true once PID has ended, false after SECONDS
wait_for() {
  local pid=$1 i
  for ((i = 0; i < $2; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 1
  done
  ! kill -0 "$pid" 2>/dev/null
}

# wsq_wheel PYTHON WHEELHOUSE: set WSQ_WHEEL to a wsq wheel for this machine,
# building it once from the PyPI sdist. wsq's setup.py passes -m64 to the
# compiler on every POSIX system, which only x86-64 compilers accept; we drop
# it and ask for x86-64's C semantics where they differ (signed char, no fused
# multiply-add), so the compressed bytes equal those of the x86-64 wheel.
wsq_wheel() {
  local python=$1 wheelhouse=$2 work wheel
  mkdir -p "$wheelhouse"
  wheel=$(find "$wheelhouse" -maxdepth 1 -name "wsq-$WSQ_VERSION-*.whl" | head -n 1)
  if [ -z "$wheel" ]; then
    work=$(mktemp -d)
    slowly "downloading the wsq $WSQ_VERSION source" \
      "$python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
      "wsq==$WSQ_VERSION" -d "$work"
    tar -xzf "$work/wsq-$WSQ_VERSION.tar.gz" -C "$work"
    sed -i 's/ -m64"/ -fsigned-char -ffp-contract=off"/' "$work/wsq-$WSQ_VERSION/setup.py"
    grep -q -- '-ffp-contract=off' "$work/wsq-$WSQ_VERSION/setup.py" \
      || die "wsq $WSQ_VERSION's setup.py is not the one this script knows how to patch"
    slowly "building wsq $WSQ_VERSION for $(uname -m) (no wheel on PyPI; a few minutes on a Pi)" \
      "$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$wheelhouse" "$work/wsq-$WSQ_VERSION"
    rm -rf "$work"
    wheel=$(find "$wheelhouse" -maxdepth 1 -name "wsq-$WSQ_VERSION-*.whl" | head -n 1)
    [ -n "$wheel" ] || die "building wsq left no wheel in $wheelhouse"
  fi
  # shellcheck disable=SC2034  # read by the caller
  WSQ_WHEEL=$wheel
}
