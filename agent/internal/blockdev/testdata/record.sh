#!/bin/sh
# record.sh: print the part of a live machine's block-device state that
# blockdev.Discover reads, in the format the tests materialize
# (blockdevtest.Materialize):
#
#   L <path under /sys> <symlink target>   a symlink, target as the kernel has it
#   F <path under /sys> <content>          a one-line file
#   D <path under /sys>                    an (empty) directory
#
# followed by "== mountinfo" and "== swaps" sections with the verbatim
# /proc/1/mountinfo and /proc/swaps. Run as root on the machine to record:
#   sh record.sh > layout.txt
set -eu
sys=/sys
link() { printf 'L %s %s\n' "${1#$sys/}" "$(readlink "$1")"; }
file() { [ -r "$1" ] && printf 'F %s %s\n' "${1#$sys/}" "$(head -c 200 "$1" | head -n1)" || true; }
for l in "$sys"/block/* "$sys"/class/block/* "$sys"/dev/block/*; do link "$l"; done
for c in "$sys"/class/block/*; do
	d=$(cd "$c" && pwd -P)
	for f in dev partition ro removable size dm/name dm/uuid loop/backing_file; do file "$d/$f"; done
	for s in holders slaves; do
		printf 'D %s\n' "${d#$sys/}/$s"
		for l in "$d/$s"/*; do [ -L "$l" ] && link "$l"; done
	done
done
for l in "$sys"/fs/btrfs/*/devices/*; do [ -L "$l" ] && link "$l"; done
echo "== mountinfo"
cat /proc/1/mountinfo
echo "== swaps"
cat /proc/swaps
