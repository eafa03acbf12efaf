#!/bin/sh
# A rank killed mid-training (tests/dist_fault.c), on 2 ranks:
#   dist_fault.sh MPIRUN PROGRAM
# 1. With the launcher told to keep the job going, the surviving rank finds
#    the loss itself: nb_fit fails with an error naming rank 1 within
#    NB_DIST_TIMEOUT (5 s here) plus the 2 s probe, and it exits with 3.
# 2. By default the launcher ends the job and names the rank: non-zero.
mpirun=$1 prog=$2
export NB_DIST_TIMEOUT=5
fail() {
    echo "FAIL: $*"
    printf '%s\n' "$out"
    exit 1
}
if "$mpirun" --version 2>&1 | grep -q "Open MPI"; then keep=--enable-recovery
else keep=-disable-auto-cleanup; fi  # MPICH's hydra

out=$("$mpirun" $keep -np 2 sh -c \
      '"$0"; echo "rank ${OMPI_COMM_WORLD_RANK:-$PMI_RANK} exit status $?"' "$prog" 2>&1)
printf '%s\n' "$out" | grep -q "^rank 0 exit status 3$" || fail "rank 0 did not exit with status 3"
line=$(printf '%s\n' "$out" | grep "^dist_fault: rank 0 after")
printf '%s\n' "$line" | grep -Eq "nb_fit: lost rank 1: its process \(pid [0-9]+ on .*\) is gone.*\(dist\)$" ||
    fail "no error naming the lost rank"
secs=$(printf '%s\n' "$line" | sed 's/^dist_fault: rank 0 after \([0-9.]*\) s:.*/\1/')
awk "BEGIN { exit !($secs >= 5 && $secs <= 5 + 2 + 1) }" || fail "stopped after $secs s, not 5 to 8"
echo "kept job: $line"

start=$(date +%s)
out=$("$mpirun" -np 2 "$prog" 2>&1) && fail "mpirun exited with 0 after a rank was killed"
took=$(( $(date +%s) - start ))
printf '%s\n' "$out" | grep -Eiq "rank 1|killed by signal" || fail "the launcher did not name rank 1"
[ "$took" -le 30 ] || fail "the launcher took $took s to end the job"
echo "default job: ended in $took s, the launcher naming rank 1"
