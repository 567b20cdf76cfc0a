#!/usr/bin/env bash
# Times each link: appends "seconds output" to $LINK_LOG.
out=""
prev=""
for a in "$@"; do
  if [ "$prev" = "-o" ]; then out="$a"; fi
  prev="$a"
done
t0=$(date +%s.%N)
cc "$@"
rc=$?
t1=$(date +%s.%N)
echo "$(echo "$t1 - $t0" | bc) $out" >> "${LINK_LOG:-/work/linktime/links.log}"
exit $rc
