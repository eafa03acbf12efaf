#!/bin/sh
# `mpirun -np 2 nabla train --distributed` reaches the test accuracy of one
# process (within 0.5 points), on the classic model for 3 epochs:
#   dist_train.sh MPIRUN NABLA
mpirun=$1 nabla=$2
dir=$(mktemp -d) || exit 1
trap 'rm -rf "$dir"' EXIT
acc() { sed -n 's/^test accuracy: \([0-9.]*\).*/\1/p' "$1"; }
"$nabla" train --epochs 3 --out "$dir/one" >"$dir/one.log" 2>&1 || { cat "$dir/one.log"; exit 1; }
"$mpirun" -np 2 "$nabla" train --distributed --epochs 3 --out "$dir/two" >"$dir/two.log" 2>&1 ||
    { cat "$dir/two.log"; exit 1; }
grep -q "2 ranks, each taking its shard of every batch of 32" "$dir/two.log" || { cat "$dir/two.log"; exit 1; }
[ -f "$dir/two/model.safetensors" ] && [ -f "$dir/two/step.dot" ] || { echo "no outputs"; exit 1; }
[ "$(grep -c '^test accuracy' "$dir/two.log")" = 1 ] || { echo "not one report"; exit 1; }
a1=$(acc "$dir/one.log") a2=$(acc "$dir/two.log")
echo "test accuracy: one process $a1, 2 ranks $a2"
awk "BEGIN { d = $a1 - $a2; exit !(d <= 0.005 && d >= -0.005) }"
