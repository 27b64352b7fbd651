#!/bin/sh
# Install the handover agent on a Debian 12 / Raspberry Pi OS box (or into a staging root).
#   sudo systemd/install.sh                  install on this box and start the agent
#   systemd/install.sh --root DIR --no-venv [--python PY]
#                                            stage into DIR (an image being built); build the
#                                            venv on the box itself, its scripts name their path.
#                                            PY (default python3) must have the agent's libraries:
#                                            it checks the configuration and writes the drop-ins.
# Idempotent: running it again changes nothing but what the new sources changed. Never
# overwrites /etc/handover-agent/handover.toml (that comes from provisioning, SPEC §5).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
SOURCE="$(dirname "$HERE")"
ROOT=/
VENV=yes
PYTHON=""

usage() { echo "usage: $0 [--root DIR] [--no-venv [--python PY]]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift 2;;
        --root=*) ROOT="${1#--root=}"; shift;;
        --no-venv) VENV=no; shift;;
        --python) [ $# -ge 2 ] || usage; PYTHON="$2"; shift 2;;
        --python=*) PYTHON="${1#--python=}"; shift;;
        -h|--help) usage;;
        *) echo "install.sh: unknown option '$1'" >&2; usage;;
    esac
done
[ -d "$ROOT" ] || { echo "install.sh: root directory '$ROOT' does not exist" >&2; exit 1; }
ROOT="$(cd "$ROOT" && pwd)"
R="${ROOT%/}"                                  # prefix for paths: "" when installing on this box
LIVE=no
if [ -z "$R" ] && [ -d /run/systemd/system ]; then LIVE=yes; fi
if [ "$(id -u)" -ne 0 ]; then echo "install.sh: run as root (sudo)" >&2; exit 1; fi
if [ -n "$R" ] && [ "$VENV" = yes ]; then
    echo "install.sh: with --root, add --no-venv and build the venv on the box (a venv names its own path)" >&2
    exit 1
fi

if [ "$VENV" = yes ] && [ -n "$PYTHON" ]; then
    echo "install.sh: --python is for --no-venv; on the box the agent's own venv is used" >&2
    exit 1
fi

OPT="$R/opt/handover-agent"
UNITS="$R/etc/systemd/system"
CONFIG="$R/etc/handover-agent/handover.toml"

# The configuration is checked by the agent's own code with the agent's own libraries (the
# system python3 of a fresh box has none of them, e.g. cryptography). On the box that is the
# venv under /opt, so the program there is brought up to date first; in a staging root it is
# the Python given with --python.
if [ "$VENV" = yes ]; then
    echo "== program under /opt/handover-agent/venv"
    [ -x "$OPT/venv/bin/python" ] || python3 -m venv "$OPT/venv"
    "$OPT/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade "$SOURCE[terminal]"
    PYTHON="$OPT/venv/bin/python"
else
    PYTHON="${PYTHON:-python3}"
    command -v "$PYTHON" >/dev/null || { echo "install.sh: no Python '$PYTHON'" >&2; exit 1; }
    PYTHON="$(command -v "$PYTHON")"
    export PYTHONPATH="$SOURCE"
    if ! "$PYTHON" -c 'import agent.config, offline.provisioning' 2>/dev/null; then
        echo "install.sh: $PYTHON cannot run the agent's code (its libraries are missing):" \
             "give --python a Python where 'pip install $SOURCE[terminal]' was run" >&2
        exit 1
    fi
fi

# A configuration already on the box must be valid before its set-up changes or anything restarts.
# Values only: the certificates it names arrive with provisioning, and under --root its paths are
# not this machine's.
if [ -f "$CONFIG" ]; then
    "$PYTHON" -m agent.config check-values "$CONFIG" >/dev/null
fi

put() {  # put MODE SRC DEST: install a root-owned file (same content and mode on every run)
    install -D -m "$1" -o root -g root "$2" "$3"
}

echo "== users and groups (handover, handover-kiosk)"
put 0644 "$HERE/handover-agent.sysusers" "$R/etc/sysusers.d/handover-agent.conf"
systemd-sysusers --root="$ROOT" "$R/etc/sysusers.d/handover-agent.conf"

echo "== directories"
put 0644 "$HERE/handover-agent.tmpfiles" "$R/etc/tmpfiles.d/handover-agent.conf"
systemd-tmpfiles --root="$ROOT" --create "$R/etc/tmpfiles.d/handover-agent.conf"

echo "== program under /opt/handover-agent"
for script in handover-kiosk handover-usb-media handover-apply-config; do
    put 0755 "$HERE/$script" "$OPT/libexec/$script"
done
for doc in deploy.md config.md; do
    [ -f "$SOURCE/docs/$doc" ] && put 0644 "$SOURCE/docs/$doc" "$OPT/docs/$doc"
done
echo "== configuration example"
put 0644 "$HERE/handover.toml.example" "$R/etc/handover-agent/handover.toml.example"

echo "== units, udev rules, PAM"
for unit in handover-agent.service handover-backup.service handover-backup.timer \
            handover-kiosk.service handover-usb@.service \
            handover-apply-config.service handover-apply-config.path; do
    put 0644 "$HERE/$unit" "$UNITS/$unit"
done
put 0644 "$HERE/90-handover-usb.rules" "$R/etc/udev/rules.d/90-handover-usb.rules"
put 0644 "$HERE/99-handover-devices.rules" "$R/etc/udev/rules.d/99-handover-devices.rules"
put 0644 "$HERE/handover-kiosk.pam" "$R/etc/pam.d/handover-kiosk"
ROOT="$R" PYTHON="$PYTHON" "$HERE/handover-apply-config"

echo "== enable"
ENABLE="handover-agent.service handover-backup.timer handover-apply-config.path handover-kiosk.service"
# shellcheck disable=SC2086
systemctl --root="$ROOT" --quiet enable $ENABLE
if [ "$LIVE" = yes ]; then
    udevadm control --reload-rules
    systemctl daemon-reload
    # shellcheck disable=SC2086
    systemctl restart handover-agent.service handover-backup.timer handover-apply-config.path
    echo "installed; the kiosk screen starts at next boot (or: systemctl start handover-kiosk)"
else
    echo "installed into $ROOT"
fi
