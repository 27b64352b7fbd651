#!/bin/sh
# Install the handover agent on a Debian 12 / Raspberry Pi OS box (or into a staging root).
#   sudo systemd/install.sh                  install on this box and start the agent
#   systemd/install.sh --root DIR --no-venv  stage into DIR (an image being built); build the
#                                            venv on the box itself, its scripts name their path
# Idempotent: running it again changes nothing but what the new sources changed. Never
# overwrites /etc/handover-agent/handover.toml (that comes from provisioning, SPEC §5).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
SOURCE="$(dirname "$HERE")"
ROOT=/
VENV=yes

usage() { echo "usage: $0 [--root DIR] [--no-venv]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift 2;;
        --root=*) ROOT="${1#--root=}"; shift;;
        --no-venv) VENV=no; shift;;
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

# A configuration already on the box must be valid before anything is changed. Values only: the
# certificates it names arrive with provisioning, and under --root its paths are not this machine's.
if [ -f "$R/etc/handover-agent/handover.toml" ]; then
    PYTHONPATH="$SOURCE" python3 -m agent.config check-values "$R/etc/handover-agent/handover.toml" >/dev/null
fi

OPT="$R/opt/handover-agent"
UNITS="$R/etc/systemd/system"

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
if [ "$VENV" = yes ]; then
    [ -x "$OPT/venv/bin/python" ] || python3 -m venv "$OPT/venv"
    "$OPT/venv/bin/pip" install --quiet --disable-pip-version-check --upgrade "$SOURCE"
    PYTHON="$OPT/venv/bin/python"
else
    PYTHON="$(command -v python3)"
    export PYTHONPATH="$SOURCE"
fi

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
