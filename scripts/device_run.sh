#!/usr/bin/env bash
# Runs ON the GPU machine, from the repository root, inside one device call (docs/gpu_runbook.md).
# Prepares the carried data pack, runs one stage within a time budget, and leaves ONE archive in $OUT
# (results.csv, run records without checkpoints, shard logs, benchmark CSVs, nvidia-smi). Every sweep skips
# the runs the committed results/ holds (`--recorded results`; it comes with the tracked tree).
#
#   bash scripts/device_run.sh STAGE[,STAGE...] [BUDGET_S]   (BUDGET_S: stop training after this; default 500)
#
# Stages run in the order given and share the budget. STAGE:
#   bench         tests/test_trainstep.py on the GPU, then benchmarks/train_speed.py on CUDA: our step
#                 CUDA-graphed (profile, time to 93 % on Fashion-MNIST), eager, and compiled for 28x28 and
#                 32x32; needs carry/fmnist
#   fmnist-paper  Fashion-MNIST, paper protocol, the paper's 7 models, seeds 0-2
#   fmnist-corr   Fashion-MNIST, corrected protocol, 9 models (with the ablations), seeds 0-2
#   fmnist-stem   Fashion-MNIST, corrected protocol, the small-image stem, 9 models, seeds 0-2, 8 epochs
#                 (STEM_EXTRA, default "--epochs 8": the budget of the paper-stem `-e8` rows it compares with;
#                 STEM_EXTRA= for the paper's budget)
#   cifar10-paper / cifar10-corr / cifar10-stem    the same on CIFAR-10; needs carry/cifar10
#   tiny          Tiny ImageNet (train subset), both protocols, resnet18, gradattn_lpe, gradattn_rope, seeds 0-2
#   bench-interleave  benchmarks/interleave_speed.py: the same 6 short Fashion-MNIST runs as 6 shard processes,
#                 as 6 runs interleaved in one process, and as 2 processes of 3; needs carry/fmnist
#
# JOBS (default 6) sweep processes share the GPU, each running every JOBS-th configuration
# (`gradattn sweep --shard k/JOBS`). Runs in results/results.csv (RECORDED=results by default; RECORDED= to
# retrain them) and runs finished under outputs/gpu (a warm machine's earlier call) are skipped; a run cut by the budget is left unfinished and starts afresh next time (it resumes from its
# checkpoint when the next call comes within 30 s and finds the machine still warm). The sweep runs seed by
# seed, so a cut stage leaves whole seeds of every model. MODELS=a,b,... replaces a stage's model list
# (to fit a short call: the paper's GradAttn variants and ResNet-18 first, say). CUDA_TESTS=0 skips the
# ~45 s of CUDA-only training tests (for a second call on a machine that already ran them). INTERLEAVE=K
# (default 1) makes each shard keep K runs going at once on their own CUDA streams (`--interleave K`,
# gradattn.interleave): JOBS=2 INTERLEAVE=3 runs six at a time in two processes (on an H200, 2026-11-28,
# 1.107x the images/s of JOBS=6: benchmarks/README.md). INTERLEAVE=auto with
# bench-interleave as the first stage takes, for the stages after it, the layout (JOBS x INTERLEAVE) that
# trained the most images per second in that benchmark (JOBS=6 INTERLEAVE=1 if none finished). CARRY
# (default carry) holds the packs; DATA_ROOT (default data) is where they are prepared and every sweep reads.
# A stage whose pack is missing or unreadable is named, the others run, the archive is written, and the
# call exits 1. A stage reached with under 60 s of budget left prepares nothing. PLAN=1 (no OUT needed, no
# data, no GPU) prints, per sweep stage, each run with what the call would do with it (`gradattn sweep
# --plan`: trains, resumes, recorded, finished): run it here before a call to read the runs' tags and count.
# tests/test_device_script.py runs this script on the CPU.
set -uo pipefail
stages=${1:?usage: bash scripts/device_run.sh STAGE[,STAGE...] [BUDGET_S]}
budget=${2:-500}
known=" bench bench-interleave fmnist-paper fmnist-corr fmnist-stem cifar10-paper cifar10-corr cifar10-stem tiny "
for stage in ${stages//,/ }; do
    [[ $known == *" $stage "* ]] || { echo "unknown stage $stage; known:$known" >&2; exit 2; }
done
jobs=${JOBS:-6}
interleave=${INTERLEAVE:-1}
if [[ $interleave == auto ]]; then
    [[ ${stages%%,*} == bench-interleave ]] || { echo "INTERLEAVE=auto needs bench-interleave as the first stage" >&2; exit 2; }
    interleave=1
    auto_layout=1
fi
bench_images=${BENCH_IMAGES:-10240}   # images per timed benchmark epoch
device=${DEVICE:-cuda}           # DEVICE=cpu EXTRA="--sample --epochs 1" smoke-tests this script on a CPU
carry=${CARRY:-carry}            # the carried packs (scripts/pack_for_device.py)
data_root=${DATA_ROOT:-data}     # where the packs are prepared and every sweep reads (a smoke test elsewhere
                                 # leaves the checkout's data/ as `make data` made it)
read -r -a extra <<<"${EXTRA:-}"
read -r -a stem_extra <<<"${STEM_EXTRA---epochs 8}"  # the stem stages' own options, before EXTRA (which wins)
read -r -a bench_extra <<<"${BENCH_EXTRA:-}"   # options for benchmarks/interleave_speed.py (EXTRA is the sweeps')
plan=${PLAN:-}                   # PLAN=1: list what each sweep stage would train, resume or skip, and stop
out=${OUT:-}
[[ -n $out || -n $plan ]] || { echo "OUT must name the folder whose files come back (the device tool sets it)" >&2; exit 2; }
runs=outputs/gpu
recorded_dir=${RECORDED-results}
recorded=()
start=$SECONDS
mkdir -p "$runs/logs" "$runs/runs" outputs/bench "$data_root" ${out:+"$out"}
failed=()                        # stages whose data could not be prepared: the call exits 1 at the end
export GRADATTN_DATA; GRADATTN_DATA=$(cd "$data_root" && pwd)   # for the benchmarks, which take no --data-root
py=${PYTHON:-python3}

if [[ -n $recorded_dir ]]; then
    recorded=(--recorded "$recorded_dir")
    echo "runs in $recorded_dir/results.csv, skipped by every sweep: $(( $(wc -l <"$recorded_dir/results.csv") - 1 ))"
fi

# Every sweep of the call, planned or run, sees these options, so PLAN=1 lists the runs `grid` would train.
sweep_options=("${extra[@]}" "${recorded[@]}" --device "$device" --out "$runs" --data-root "$data_root" --no-progress)

left() { echo $(( budget - (SECONDS - start) )); }

prepare() {   # prepare <pack> <dataset>: carried shared-layout pack -> data/<dataset>, decode cache warmed once;
              # a stage whose data cannot be prepared is named in `failed`, and the call exits 1 at the end
    if [[ ! -d $carry/$1 ]]; then
        echo "no pack $carry/$1: make it with scripts/pack_for_device.py --packs $1 and carry it"
    elif ! $py -m gradattn data prepare --data-root "$data_root" --shared "$carry/$1" >"$runs/logs/prepare-$1.log" 2>&1; then
        tail -5 "$runs/logs/prepare-$1.log"
    elif $py -c "from gradattn.data import load_splits; s = load_splits('$2', 'corrected', root='$data_root'); print(s.source)"; then
        return 0
    fi
    failed+=("$stage")
    return 1
}

sweep_stage() {   # sweep_stage <pack> <dataset> <sweep options...>: prepare, then grid; neither once the budget is spent
    if [[ -n $plan ]]; then
        echo "== $stage"
        $py -m gradattn sweep "${@:3}" "${sweep_options[@]}" --plan
        return
    fi
    if (( $(left) < 60 )); then echo "budget spent, not starting $stage"; return 0; fi
    prepare "$1" "$2" && grid "${@:3}"
}

grid() {      # grid <sweep options...>: JOBS shards in parallel, cut at the budget
    local t; t=$(left)
    if (( t < 60 )); then echo "budget spent, not starting: $*"; return 0; fi
    echo "[$(date +%T)] sweep $* (jobs $jobs, interleave $interleave, ${t}s left)"
    for k in $(seq 0 $((jobs - 1))); do
        timeout --signal=TERM "$t" $py -m gradattn sweep "$@" "${sweep_options[@]}" --keep-going --shard "$k/$jobs" \
            --interleave "$interleave" >>"$runs/logs/$stage-shard$k.log" 2>&1 &
    done
    wait
    grep -h -e "test top-1" -e "FAILED" "$runs"/logs/"$stage"-shard*.log | sort | tail -n 80
}

paper7=resnet18,gradattn_nope_d32,gradattn_nope,gradattn_lpe,gradattn_rope,se_resnet18,cbam_resnet18
all9=$paper7,plain18,gradattn_mlp
if [[ -n ${MODELS:-} ]]; then paper7=$MODELS; all9=$MODELS; fi
if [[ -z $plan ]] && command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$runs/logs/nvidia-smi.csv" 2>&1
    cat "$runs/logs/nvidia-smi.csv"
fi

if [[ -z $plan && $device == cuda && $stages != bench && ${CUDA_TESTS:-1} != 0 ]]; then   # CUDA-only checks of training (resume on the GPU), ~45 s
    $py -m pytest -q -p no:cacheprovider tests/test_train.py tests/test_interleave.py -k cuda 2>&1 | tail -n 5 \
        | tee "$out/cuda-tests.log"
fi

for stage in ${stages//,/ }; do
if [[ -n $plan && $stage == bench* ]]; then echo "== $stage: a benchmark, not planned"; continue; fi
case "$stage" in
    bench)
        # Our step CUDA-graphed (as gradattn.train runs it; + profile, time to 93 %), then eager, then
        # torch.compile'd. Each part is cut at its share of the budget so the archive is always written;
        # the logs go straight to $OUT, so a cut part still returns the rows it printed.
        prepare fmnist fashionmnist || exit 1
        $py -m pytest -q -p no:cacheprovider tests/test_trainstep.py 2>&1 | tail -n 15 | tee "$out/trainstep-tests.log"
        t=$(left); timeout --signal=TERM $(( t * 45 / 100 )) $py benchmarks/train_speed.py --device "$device" \
            --images "$bench_images" --steps 30 --out outputs/bench/graphs --time-to-accuracy --data-root "$data_root" \
            --profile-steps 20 2>&1 | tee "$out/bench-graphs.log"
        t=$(left); timeout --signal=TERM $(( t * 45 / 100 )) $py benchmarks/train_speed.py --device "$device" \
            --images "$bench_images" --steps 30 --no-cuda-graphs --out outputs/bench/eager --profile-steps 20 \
            2>&1 | tee "$out/bench-eager.log"
        t=$(left); (( t > 90 )) && timeout --signal=TERM $(( t - 30 )) $py benchmarks/train_speed.py \
            --device "$device" --images "$bench_images" --steps 30 --no-cuda-graphs --compile \
            --sizes 28x28x1,32x32x3 --out outputs/bench/compile 2>&1 | tee "$out/bench-compile.log" ;;
    bench-interleave)
        prepare fmnist fashionmnist || exit 1
        t=$(left); timeout --signal=TERM "$t" $py benchmarks/interleave_speed.py --device "$device" --epochs 3 \
            --layouts 6x1,1x6,2x3 --keep outputs/bench/interleave-runs "${bench_extra[@]}" 2>&1 | tee "$out/bench-interleave.log"
        if [[ -n ${auto_layout:-} ]]; then
            read -r jobs interleave < <($py benchmarks/interleave_speed.py --best outputs/bench/interleave_speed.csv \
                || echo "6 1")
            echo "layout for the next stages: JOBS=$jobs INTERLEAVE=$interleave"
        fi ;;
    fmnist-paper) sweep_stage fmnist fashionmnist --datasets fashionmnist --models $paper7 --protocols paper --seeds 0,1,2 ;;
    fmnist-corr)  sweep_stage fmnist fashionmnist --datasets fashionmnist --models $all9 --protocols corrected --seeds 0,1,2 ;;
    fmnist-stem)  sweep_stage fmnist fashionmnist --datasets fashionmnist --models $all9 --protocols corrected --stems cifar --seeds 0,1,2 "${stem_extra[@]}" ;;
    cifar10-paper) sweep_stage cifar10 cifar10 --datasets cifar10 --models $paper7 --protocols paper --seeds 0,1,2 ;;
    cifar10-corr)  sweep_stage cifar10 cifar10 --datasets cifar10 --models $all9 --protocols corrected --seeds 0,1,2 ;;
    cifar10-stem)  sweep_stage cifar10 cifar10 --datasets cifar10 --models $all9 --protocols corrected --stems cifar --seeds 0,1,2 "${stem_extra[@]}" ;;
    tiny) sweep_stage tinyimagenet tinyimagenet --datasets tinyimagenet --models resnet18,gradattn_lpe,gradattn_rope --protocols paper,corrected --seeds 0,1,2 ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
esac
done

if [[ -n $plan ]]; then exit 0; fi
# One archive back: everything but checkpoints (a finished run's is ~45 MB, an unfinished one's more).
# Its name may hold only letters, digits, '.', '_' and '-', or the device tool leaves it behind.
tar czf "$out/${stages//,/_}.tar.gz" --exclude=checkpoint.pt --exclude='.*.tmp' outputs/gpu outputs/bench 2>/dev/null
echo "[$(date +%T)] $stages done in $((SECONDS - start)) s; $(ls "$runs"/runs/*/*/*/*/metrics.json 2>/dev/null | wc -l) finished runs under $runs"
ls -la "$out"
if (( ${#failed[@]} )); then echo "FAILED: no data for ${failed[*]} (see $runs/logs/prepare-*.log)"; exit 1; fi
