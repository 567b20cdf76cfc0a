#!/usr/bin/env bash
# Alternating rebuilds after touching src/lib.rs, each checkout in its own target dir.
export RUSTFLAGS="-C linker=/work/linktime/cc.sh"
for r in 1 2; do for side in before after; do
  export CARGO_TARGET_DIR=/work/linktime/target-$side LINK_LOG=/work/linktime/$side-alt$r.log
  rm -f $LINK_LOG; touch /work/$side/src/lib.rs
  t0=$(date +%s.%N); (cd /work/$side && cargo test --release --no-run -q 2>/dev/null); t1=$(date +%s.%N)
  echo "round $r $side: rebuild wall $(echo "$t1 - $t0" | bc) s, links $(awk '{s+=$1} END {print s}' $LINK_LOG) s in $(wc -l < $LINK_LOG) links"
done; done
