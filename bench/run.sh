#!/usr/bin/env bash
# The benchmark suite: nabla, PyTorch (CPU) and TensorFlow-Keras on the same
# workloads, interleaved in one run, at 1 and 2 threads. A benchmark, not a
# test (docs/performance.md says what each workload measures and how to read
# the table).
#
#   bench/run.sh [--quick] [--only LIST] [--rounds N] [--warmup-rounds N]
#                [--threads "1 2"] [--impls LIST] [--build DIR] [--out FILE]
#
#   --quick          one round, no warm-up round, tiny counts: shows that it
#                    works, measures nothing
#   --only LIST      comma-separated groups or workloads: step (seed model,
#                    batch 32, 128, 1024, and raw sgemm at 1024), wide (wide MLP step and raw sgemm),
#                    chain, epoch, predict, rss, adam, cnn (the convnet step
#                    at batch 128 and its epoch); default all
#   --rounds N       measured rounds (3), after --warmup-rounds (1) left out
#   --threads LIST   thread counts ("1 2")
#   --impls LIST     comma-separated: nabla,pytorch,keras (all)
#   --build DIR      the nabla build (build, else build-bench)
#   --out FILE       the raw JSON lines (default: a new file in /tmp, printed)
#
# Environment: TORCH_PYTHON, KERAS_PYTHON (a Python with torch and numpy /
# tensorflow-cpu; default: the venvs below, created with pip when missing),
# NABLA_BENCH_VENVS (where they go: ~/.cache/nabla-bench). OPENBLAS_CORETYPE
# and OPENBLAS_L2_SIZE are left as they are and recorded.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
QUICK=0 ONLY=all ROUNDS=3 WROUNDS=1 THREADS="1 2" IMPLS=nabla,pytorch,keras BUILD= OUT=
while (($#)); do
    case $1 in
    --quick) QUICK=1 ROUNDS=1 WROUNDS=0 ;;
    --only) ONLY=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --warmup-rounds) WROUNDS=$2; shift ;;
    --threads) THREADS=$2; shift ;;
    --impls) IMPLS=$2; shift ;;
    --build) BUILD=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option '$1' (--help)" >&2; exit 2 ;;
    esac
    shift
done

# ---- what to run ---------------------------------------------------------------
# workload  warm-up units  reps  units per rep  (the same for every side)
declare -A COUNTS=(
    [step_seed_b32]="50 10 200" [step_seed_b128]="50 10 50" [step_seed_b1024]="20 10 6"
    [step_wide_b256]="5 10 5" [gemm_wide_b256]="2 10 5" [gemm_seed_b1024]="2 10 20" [chain1000]="5 10 20"
    [epoch_b32]="1 2 1" [predict_b32]="2 10 1" [predict_b10000]="2 10 1"
    [adam_seed]="50 10 400" [adam_wide]="3 10 5" [rss]="0 10 1"
    [step_cnn_b128]="5 10 3" [epoch_cnn_b128]="1 2 1"
)
declare -A GROUP=(
    [step]="step_seed_b32 step_seed_b128 step_seed_b1024 gemm_seed_b1024" [wide]="step_wide_b256 gemm_wide_b256"
    [chain]=chain1000 [epoch]=epoch_b32 [predict]="predict_b32 predict_b10000"
    [adam]="adam_seed adam_wide" [rss]=rss [cnn]="step_cnn_b128 epoch_cnn_b128"
)
ORDER="step wide chain epoch predict adam rss cnn"
WORKLOADS=()
for g in $ORDER; do
    for w in ${GROUP[$g]}; do
        if [[ $ONLY == all || ",$ONLY," == *",$g,"* || ",$ONLY," == *",$w,"* ]]; then WORKLOADS+=("$w"); fi
    done
done
((${#WORKLOADS[@]})) || { echo "run.sh: --only '$ONLY' selects nothing" >&2; exit 2; }
IFS=, read -r -a IMPL_LIST <<<"$IMPLS"
want() { [[ ",$IMPLS," == *",$1,"* ]]; }

# ---- nabla ----------------------------------------------------------------------
if [[ -z $BUILD ]]; then
    for c in "$root/build" "$root/build-bench"; do
        if [[ -x $c/bench/bench_step ]]; then BUILD=$c; break; fi
    done
fi
if want nabla && [[ -z $BUILD || ! -x $BUILD/bench/bench_step ]]; then
    echo "run.sh: no bench programs; build them (meson setup build && ninja -C build) or pass --build" >&2
    exit 2
fi

# ---- the peers, each in its own venv (never a dependency of nabla) -------------
VENVS=${NABLA_BENCH_VENVS:-$HOME/.cache/nabla-bench}
ensure_venv() { # name python-var packages...
    local name=$1 var=$2; shift 2
    if [[ -n ${!var:-} ]]; then return; fi
    local py=$VENVS/$name/bin/python
    if [[ ! -x $py ]]; then
        echo "run.sh: creating the $name venv in $VENVS/$name (pip install $*)" >&2
        mkdir -p "$VENVS"
        python3 -m venv "$VENVS/$name"
        "$py" -m pip install --quiet --upgrade pip
        "$py" -m pip install --quiet "$@"
    fi
    printf -v "$var" %s "$py"
}
if want pytorch; then ensure_venv torch TORCH_PYTHON torch numpy; fi
if want keras; then ensure_venv keras KERAS_PYTHON tensorflow-cpu numpy; fi

# Raw sgemm (C only, with nabla): OpenBLAS, and oneDNN when bench_gemm has it.
GEMM_IMPLS=()
if want nabla; then
    GEMM_IMPLS=(openblas)
    if "$BUILD/bench/bench_gemm" --impl onednn --info >/dev/null 2>&1; then GEMM_IMPLS+=(onednn); fi
fi

OUT=${OUT:-$(mktemp /tmp/nabla-bench.XXXXXX.jsonl)}
LOG=${OUT%.jsonl}.log
: >"$OUT"
: >"$LOG"
ncpu=$(nproc --all)
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in bench/

# ---- the machine, recorded -------------------------------------------------------
load() { cut -d' ' -f1-3 /proc/loadavg; }
gemm_backend=openblas
lib=$(find "$BUILD" -maxdepth 1 -name 'libnabla.so*' -type f 2>/dev/null | head -1 || true)
if [[ -n $lib ]] && ldd "$lib" 2>/dev/null | grep -q libdnnl; then gemm_backend=onednn; fi
info=$( [[ -n $BUILD ]] && "$BUILD/bench/bench_step" --info || echo '{}')
buildtype=$(meson introspect --buildoptions "$BUILD" 2>/dev/null |
    python3 -c 'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"))' 2>/dev/null || echo '?')
python3 - "$OUT" <<PY
import json, sys
info = json.loads('''$info''')
m = {"kind": "machine", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "nproc": $ncpu,
     "cpu": "$(lscpu | sed -n 's/^Model name: *//p' | head -1)", "kernel": "$(uname -r)",
     "load_before": "$(load)", "autogroup": "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo '?')",
     "OPENBLAS_CORETYPE": "${OPENBLAS_CORETYPE-<unset>}", "OPENBLAS_L2_SIZE": "${OPENBLAS_L2_SIZE-<unset>}",
     "blas_core": info.get("blas_core"), "blas_config": info.get("blas_config"),
     "gemm_backend": "$gemm_backend", "nabla_commit": "$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')",
     "build": "$BUILD", "buildtype": "$buildtype", "rounds": $ROUNDS, "warmup_rounds": $WROUNDS,
     "quick": bool($QUICK), "threads": "$THREADS", "workloads": "${WORKLOADS[*]}"}
open(sys.argv[1], "a").write(json.dumps(m) + "\n")
for k, v in m.items():
    if k != "kind": print(f"{k + ':':<18} {v}")
PY
for impl in pytorch keras; do
    want $impl || continue
    py=TORCH_PYTHON script=torch_bench.py
    [[ $impl == keras ]] && py=KERAS_PYTHON script=keras_bench.py
    v=$("${!py}" "$here/$script" --workload versions 2>>"$LOG" | tail -1)
    echo "$v" >>"$OUT"
    echo "$(printf '%-18s' "$impl:") ${!py}  $v"
done
echo "raw JSON:          $OUT  (stderr of every process: $LOG)"
echo

# ---- one process ---------------------------------------------------------------
# run_one ROUND THREADS WORKLOAD IMPL: runs it in a fresh process, appends its
# lines (with "round") to OUT and prints a one-line summary.
run_one() {
    local r=$1 t=$2 w=$3 impl=$4 cmd=() counts args
    counts=(${COUNTS[$w]})
    args=(--threads "$t" --warmup "${counts[0]}" --reps "${counts[1]}" --n "${counts[2]}")
    ((QUICK)) && args=(--threads "$t" --quick)
    local b=$BUILD/bench py=${TORCH_PYTHON:-} script=$here/torch_bench.py
    [[ $impl == keras ]] && py=${KERAS_PYTHON:-} script=$here/keras_bench.py
    local name=$w
    [[ $w == rss ]] && name=epoch_b32
    case $impl:$w in
    nabla:step_*) local m=${w#step_}; cmd=("$b/bench_step" --model "${m%_b*}" --batch "${m#*_b}") ;;
    openblas:gemm_* | onednn:gemm_*) local m=${w#gemm_}
        cmd=("$b/bench_gemm" --impl "$impl" --model "${m%_b*}" --batch "${m#*_b}") ;;
    nabla:chain*) cmd=("$b/bench_chain" --ops "${w#chain}") ;;
    nabla:epoch_cnn_*) cmd=("$b/bench_epoch" --model cnn --batch "${w#epoch_cnn_b}") ;;
    nabla:epoch_* | nabla:rss) cmd=("$b/bench_epoch") ;;
    nabla:predict_*) cmd=("$b/bench_predict" --batch "${w#predict_b}") ;;
    nabla:adam_*) cmd=("$b/bench_adam" --model "${w#adam_}") ;;
    *:gemm_*) return 0 ;;
    *) cmd=("$py" "$script" --workload "$name") ;;
    esac
    export OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t MKL_NUM_THREADS=$t
    export TF_NUM_INTRAOP_THREADS=$t TF_NUM_INTEROP_THREADS=$t
    local tmp rc=0
    tmp=$(mktemp)
    if [[ $w == rss ]]; then # peak RSS of a 10-epoch run (1 with --quick)
        local ep=${counts[1]}
        ((QUICK)) && ep=1
        echo "== round $r threads $t $w $impl: /usr/bin/time -v ${cmd[*]} --threads $t --warmup 0 --reps $ep" >>"$LOG"
        /usr/bin/time -v -o "$tmp.time" "${cmd[@]}" --threads "$t" --warmup 0 --reps "$ep" \
            >>"$LOG" 2>&1 || rc=$?
        python3 - "$tmp.time" "$impl" "$t" "$r" "$ep" "$rc" >"$tmp" <<'PY'
import json, re, sys
path, impl, t, r, ep, rc = sys.argv[1:]
text = open(path).read()
def field(name):
    m = re.search(re.escape(name) + r": *(.*)", text)
    return m.group(1).strip() if m else None
wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss)") or "0"
secs = 0.0
for part in wall.split(":"):
    secs = secs * 60 + float(part)
rss = int(field("Maximum resident set size (kbytes)") or 0)
line = {"impl": impl, "workload": f"rss_{ep}epochs", "threads": int(t), "round": int(r),
        "rep": 1, "n": 1, "wall": secs,
        "cpu": float(field("User time (seconds)") or 0) + float(field("System time (seconds)") or 0),
        "unit": "MiB", "per_unit": round(rss / 1024, 1), "rss_kb": rss, "epochs": int(ep)}
if rc != "0":
    line["error"] = f"exit status {rc}"
print(json.dumps(line))
PY
    else
        echo "== round $r threads $t $w $impl: ${cmd[*]} ${args[*]}" >>"$LOG"
        "${cmd[@]}" "${args[@]}" >"$tmp" 2>>"$LOG" || rc=$?
        if ((rc)); then
            echo "{\"impl\": \"$impl\", \"workload\": \"$w\", \"threads\": $t, \"error\": \"exit status $rc\"}" >>"$tmp"
        fi
    fi
    sed "s/^{/{\"round\": $r, /" "$tmp" >>"$OUT"
    python3 - "$tmp" "$r" <<'PY'
import json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
err = [x for x in rows if "error" in x]
rows = [x for x in rows if "per_unit" in x and not x.get("warmup") and x.get("workload") != "gemm_shape"]
for impl in dict.fromkeys(x["impl"] for x in rows):
    v = [x for x in rows if x["impl"] == impl]
    wall, cpu = sum(x["wall"] for x in v), sum(x["cpu"] for x in v)
    m = st.median(x["per_unit"] for x in v)
    print(f"  round {sys.argv[2]} t={v[0]['threads']} {v[0]['workload']:<16} {impl:<8} "
          f"median {f'{m:.4g}' if m < 1000 else f'{m:.0f}':>10} {v[0]['unit']:<8} "
          f"({len(v)} samples, cpu/wall {cpu / wall if wall else 0:.2f})")
for x in err:
    print(f"  FAILED: {x['workload']} {x['impl']} threads {x['threads']}: {x['error']} (see the log)")
PY
    rm -f "$tmp" "$tmp.time"
}

# ---- the rounds: every workload at each thread count, each side in turn -------
# A workload's thread counts run next to each other, their order reversed
# every other round, so a slow spell of the shared host cannot pass for a
# 2-thread/1-thread ratio; the side that goes first rotates.
for r in $(seq $((1 - WROUNDS)) "$ROUNDS"); do
    echo "== round $r$( ((r < 1)) && echo ' (warm-up, left out)') - load $(load)"
    ts=$THREADS
    ((r % 2 == 0)) && ts=$(printf '%s\n' $THREADS | tac | tr '\n' ' ')
    for w in "${WORKLOADS[@]}"; do
        for t in $ts; do
            list=("${IMPL_LIST[@]}")
            if [[ $w == gemm_* ]]; then list=("${GEMM_IMPLS[@]}"); fi
            n=${#list[@]}
            for ((i = 0; i < n; i++)); do
                run_one "$r" "$t" "$w" "${list[$(((i + r - 1 + 10 * n) % n))]}"
            done
        done
    done
done
echo "{\"kind\": \"machine_after\", \"load_after\": \"$(load)\"}" >>"$OUT"
echo "load after:        $(load)"
echo
python3 "$here/summarize.py" "$OUT"
echo
echo "raw JSON:          $OUT"
