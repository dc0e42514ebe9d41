#!/usr/bin/env bash
# Idempotent bootstrap run before every make target: Debian packages (when root), .venv,
# the editable install with [dev] extras, and compiled Babel catalogues.
# A second run does no real work and prints nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { echo "setup: $*"; }

# --- (a) Debian packages: fonts and Pango for WeasyPrint PDFs, poppler for PDF checks in
#         tests, Chromium for Playwright, the sqlite3 and psql clients.
DEBIAN_PACKAGES=(
  fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0
  poppler-utils chromium sqlite3 postgresql-client
)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    step "apt-get install ${missing[*]}"
    log="$(mktemp)"
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      echo "setup: WARNING: could not install ${missing[*]}; continuing" >&2
    fi
    rm -f "$log"
  else
    echo "setup: WARNING: missing Debian packages (install them as root):" \
      "apt-get install ${missing[*]}" >&2
  fi
fi

# --- (b) virtual environment
if [[ ! -x .venv/bin/python ]]; then
  step "create .venv"
  python3 -m venv .venv
fi

# --- (c) editable install, redone only when pyproject.toml changed since the last one
stamp=.venv/.installed
if [[ ! -f $stamp || pyproject.toml -nt $stamp ]]; then
  step "pip install -e '.[dev]'"
  log="$(mktemp)"
  if ! .venv/bin/python -m pip install --disable-pip-version-check -q -e '.[dev]' >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "setup: pip install failed" >&2
    exit 1
  fi
  rm -f "$log"
  touch "$stamp"
fi

# --- (d) Babel catalogues (*.mo are not committed); recompile only when a .po is newer
if [[ -d app/locale ]]; then
  stale=0
  while IFS= read -r -d '' po; do
    mo="${po%.po}.mo"
    if [[ ! -f $mo || $po -nt $mo ]]; then stale=1; break; fi
  done < <(find app/locale -name 'messages.po' -print0)
  if ((stale)); then
    step "pybabel compile -d app/locale -D messages"
    log="$(mktemp)"
    if ! .venv/bin/pybabel compile -d app/locale -D messages >"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      echo "setup: pybabel compile failed" >&2
      exit 1
    fi
    # pybabel skips a catalogue whose header is marked fuzzy without failing: say so.
    while IFS= read -r -d '' po; do
      [[ -f ${po%.po}.mo ]] || echo "setup: WARNING: $po was not compiled: $(cat "$log")" >&2
    done < <(find app/locale -name 'messages.po' -print0)
    rm -f "$log"
  fi
fi
