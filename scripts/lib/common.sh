# shellcheck shell=bash
# Shared by the technician's scripts (sourced, not run): find the installed
# fpagent and run it as the service user, so that files it creates in the
# state directory keep the right owner.

FPAGENT_USER=${FPAGENT_USER:-fpagent}
FPAGENT_PREFIX=${FPAGENT_PREFIX:-/opt/fpagent}

die() {  # die MESSAGE [EXIT-CODE]
  echo "${prog:-fpagent}: $1" >&2
  exit "${2:-1}"
}

find_fpagent() {  # prints the fpagent command to use
  local here candidate
  if [ -n "${FPAGENT:-}" ]; then
    echo "$FPAGENT"
    return 0
  fi
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  for candidate in "$FPAGENT_PREFIX/venv/bin/fpagent" "$here/venv/bin/fpagent" "$here/.venv/bin/fpagent"; do
    if [ -x "$candidate" ]; then
      echo "$candidate"
      return 0
    fi
  done
  command -v fpagent 2>/dev/null && return 0
  return 1
}

as_service_user() {  # as_service_user CMD...: drop to the service user when root
  if [ "$(id -u)" -eq 0 ] && [ -z "${FPAGENT_AS_ROOT:-}" ] && id -u "$FPAGENT_USER" >/dev/null 2>&1 \
     && command -v runuser >/dev/null 2>&1; then
    runuser -u "$FPAGENT_USER" -- "$@"
  else
    "$@"
  fi
}
