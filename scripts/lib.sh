# Shared by scripts/setup and scripts/setup-nemo (sourced, not run).

# apt_install PKG...: Debian packages, through sudo when not root.
apt_install() {
  [ "$#" -gt 0 ] || return 0
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: installing $*" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# make_venv DIR [PYTHON]: a virtual environment of PYTHON (default: the first python3 on
# PATH). Stock Debian and Ubuntu refuse pip into their own Python (PEP 668) and ship
# venv without ensurepip: python3-venv comes through apt when that is what is missing.
make_venv() {
  local python="${2:-python3}"
  [ -x "$1/bin/python" ] && return 0
  if ! "$python" -m venv "$1" 2>/dev/null; then
    rm -rf "$1"
    apt_install python3-venv
    "$python" -m venv "$1"
  fi
}

# stamp_matches DIR KEY: true when DIR was last installed with KEY (a hash of the
# inputs), so a second run starts at once; stamp_write DIR KEY records it.
stamp_matches() { [ "$(cat "$1/.spark-control-installed" 2>/dev/null)" = "$2" ]; }
stamp_write() { printf '%s\n' "$2" > "$1/.spark-control-installed"; }
