#!/bin/sh
# Reserves 2 MiB hugepages and mounts hugetlbfs at /dev/hugepages for DPDK.
# Idempotent: running it again changes nothing once the target is reached.
#   usage: Hugepages/setup.sh [PAGES]     (default 512 pages = 1 GiB)
set -eu

pages="${1:-512}"
mountpoint=/dev/hugepages
sysfs=/proc/sys/vm/nr_hugepages

case "$pages" in
    ''|*[!0-9]*) echo "Hugepages/setup.sh: PAGES must be a number, got '$pages'" >&2; exit 2 ;;
esac
if [ "$(id -u)" -ne 0 ]; then
    echo "Hugepages/setup.sh: must run as root (it writes $sysfs and mounts hugetlbfs): sudo $0 $pages" >&2
    exit 1
fi

current=$(cat "$sysfs")
if [ "$current" -ge "$pages" ]; then
    echo "hugepages: $current reserved (wanted $pages): unchanged"
else
    echo "$pages" > "$sysfs"
    current=$(cat "$sysfs")
    if [ "$current" -lt "$pages" ]; then
        echo "Hugepages/setup.sh: asked for $pages hugepages, the kernel gave $current (memory too fragmented or too small); " \
             "try fewer pages or reboot, or run tunnelfwd with --no-huge" >&2
        exit 1
    fi
    echo "hugepages: reserved $current pages of $(awk '/Hugepagesize/ {print $2 " " $3}' /proc/meminfo)"
fi

if grep -qs " $mountpoint hugetlbfs " /proc/mounts; then
    echo "hugetlbfs: already mounted at $mountpoint"
else
    mkdir -p "$mountpoint"
    mount -t hugetlbfs nodev "$mountpoint"
    echo "hugetlbfs: mounted at $mountpoint"
fi
grep -E 'HugePages_(Total|Free)' /proc/meminfo
