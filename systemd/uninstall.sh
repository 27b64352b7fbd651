#!/bin/sh
# Remove what install.sh added. Keeps the journal, backups and configuration (cash records)
# unless --purge is given; --purge also removes them and the handover users.
# The shared device groups (dialout, plugdev, gpio, audio, video, render, input) are left alone.
set -eu
ROOT=/
PURGE=no
usage() { echo "usage: $0 [--root DIR] [--purge]" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --root) [ $# -ge 2 ] || usage; ROOT="$2"; shift 2;;
        --root=*) ROOT="${1#--root=}"; shift;;
        --purge) PURGE=yes; shift;;
        -h|--help) usage;;
        *) echo "uninstall.sh: unknown option '$1'" >&2; usage;;
    esac
done
[ -d "$ROOT" ] || { echo "uninstall.sh: root directory '$ROOT' does not exist" >&2; exit 1; }
ROOT="$(cd "$ROOT" && pwd)"
R="${ROOT%/}"
LIVE=no
if [ -z "$R" ] && [ -d /run/systemd/system ]; then LIVE=yes; fi
if [ "$(id -u)" -ne 0 ]; then echo "uninstall.sh: run as root (sudo)" >&2; exit 1; fi
UNITS="$R/etc/systemd/system"
ALL="handover-agent.service handover-backup.service handover-backup.timer handover-kiosk.service
     handover-usb@.service handover-apply-config.service handover-apply-config.path"

if [ "$LIVE" = yes ]; then
    systemctl stop handover-kiosk.service handover-apply-config.path handover-backup.timer \
        handover-agent.service 'handover-usb@*.service' || true
fi
# shellcheck disable=SC2086
systemctl --root="$ROOT" --quiet disable handover-agent.service handover-backup.timer \
    handover-apply-config.path handover-kiosk.service 2>/dev/null || true
for unit in $ALL; do rm -f "$UNITS/$unit"; done
rm -f "$UNITS/handover-agent.service.d/devices.conf" "$UNITS/handover-backup.timer.d/interval.conf"
rmdir "$UNITS/handover-agent.service.d" "$UNITS/handover-backup.timer.d" 2>/dev/null || true
rm -f "$R/etc/udev/rules.d/90-handover-usb.rules" "$R/etc/udev/rules.d/99-handover-devices.rules" \
      "$R/etc/pam.d/handover-kiosk" "$R/etc/sysusers.d/handover-agent.conf" \
      "$R/etc/tmpfiles.d/handover-agent.conf" \
      "$R/etc/handover-agent/handover.toml.example" "$R/etc/handover-agent/units.env"
rm -rf "$R/opt/handover-agent"
for dir in "$R/etc/sysusers.d" "$R/etc/tmpfiles.d" "$R/etc/udev/rules.d" "$R/etc/udev" "$R/etc/pam.d" "$R/opt" \
           "$UNITS" "$R/etc/systemd"; do
    rmdir "$dir" 2>/dev/null || true    # only if install.sh created it and nothing else lives there
done

if [ "$PURGE" = yes ]; then
    rm -rf "$R/var/lib/handover-agent" "$R/etc/handover-agent"
    rmdir "$R/var/lib" "$R/var" 2>/dev/null || true   # only in a staging root that install.sh filled
    for user in handover handover-kiosk; do
        if grep -q "^$user:" "$R/etc/passwd"; then userdel --root "$ROOT" "$user"; fi
        if grep -q "^$user:" "$R/etc/group"; then groupdel --root "$ROOT" "$user"; fi
    done
else
    echo "kept $R/var/lib/handover-agent and $R/etc/handover-agent (use --purge to remove them)"
fi
if [ "$LIVE" = yes ]; then
    systemctl daemon-reload
    udevadm control --reload-rules
fi
echo "uninstalled"
