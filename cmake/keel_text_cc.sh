#!/bin/sh
# cmake/keel_text_cc.sh <ld> <linker script> <compiler> <arguments...>
# The compiler launcher of libkeel's objects: compile, then move every code section of the
# object into keel_text (cmake/keel_text.ld), so that reports can tell keel's frames by
# address, in the shared library and in a static link alike (docs/reports.md).
set -e
ld=$1
script=$2
shift 2
"$@"
out=
prev=
for arg in "$@"; do
    [ "$prev" = "-o" ] && out=$arg
    prev=$arg
done
case "$out" in
*.o) "$ld" -r -T "$script" "$out" -o "$out.keel_text" && mv -f "$out.keel_text" "$out" ;;
esac
