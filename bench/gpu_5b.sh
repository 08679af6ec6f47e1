#!/usr/bin/env bash
# The 5B on one GPU, in one command (under 10 minutes on an H100/H200):
#
#   bash bench/gpu_5b.sh                # on the GPU machine, from the repo root
#   bash bench/gpu_5b.sh --smoke        # the same steps on the CPU with the small preset (checks the script)
#
# Random-weight UnityVideo-5B in bf16 (speed does not depend on the weights). Steps, each printing
# one JSON line from bench/dit_forward.py (collected into $OUT/gpu_5b.jsonl when $OUT is set):
#   1. 256x256x33 (the release's default size): joint and RGB-only forward, SDPA against the other
#      installed attention backends (_native_cudnn, _native_flash, flex), compile on/off; MFU.
#   2. 480x832x81 joint (~33k tokens): the same with fewer rounds.
#   3. Peak memory at 480x832x81 joint: all-resident vs fp8 storage (layerwise casting) vs block-level
#      group offloading with a CUDA stream.
#   4. Diffusers' step caches at 256x256x33, 20 steps (bench/caches.py --random): speed of each cache
#      against the uncached sampler, interleaved (random weights: speed only, quality meaningless).
#   5. If COMFYUI_PATH names a ComfyUI folder: the native ComfyUI model partially loaded (low VRAM)
#      once, output against a full load (bench/comfy_lowvram.py). A GPU machine has no ComfyUI: carry
#      the snapshot's tarball (../shared/comfyui) and the wheels its in-process imports need that the
#      machine lacks (torchsde, trampoline, av, ...) and unpack it first.
# A GPU machine may lack diffusers (and carry another torch/Python): missing packages are installed
# with --no-deps from wheels carried in .whl/ (see the README's "GPU figures"), into /tmp/site.
set -uo pipefail
cd "$(dirname "$0")/.."

SMOKE=0
[[ "${1:-}" == "--smoke" ]] && SMOKE=1
PY="${PYTHON:-python3}"
LOG="${OUT:-/tmp}/gpu_5b.jsonl"
: > "$LOG"

if ! "$PY" -c "import diffusers, safetensors" 2> /dev/null; then
    if compgen -G ".whl/*.whl" > /dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
            || { echo "gpu_5b: installing the carried wheels failed" >&2; exit 1; }
        export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
    else
        echo "gpu_5b: diffusers is not installed and no wheels are in .whl/ (pip download diffusers==0.42.1 there)" >&2
        exit 1
    fi
fi
"$PY" - <<'EOF'
import json, platform, torch, diffusers
info = {"python": platform.python_version(), "torch": torch.__version__, "diffusers": diffusers.__version__,
        "cuda": torch.version.cuda, "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
print(json.dumps({"versions": info}))
EOF

if (( SMOKE )); then
    COMMON=(--preset unityvideo-small --device cpu --dtype fp32 --text-tokens 32 --threads 1)
    SMALL=(--frames 17 --height 64 --width 64)
    LARGE=(--frames 17 --height 128 --width 128)
    BACKENDS="joint@_native_math"
    COMPILE=""
    MEMORY="joint,joint+fp8"
    R1=2; R2=2
else
    COMMON=(--preset wan2.2-ti2v-5b --device cuda --dtype bf16 --text-tokens 512)
    SMALL=(--frames 33 --height 256 --width 256)
    LARGE=(--frames 81 --height 480 --width 832)
    BACKENDS="joint@_native_cudnn,joint@_native_flash,joint@flex"
    COMPILE="joint+compile"
    MEMORY="joint,joint+fp8,joint+offload"
    R1=7; R2=3
fi

run() {  # name, then dit_forward arguments
    local name="$1"; shift
    local line
    echo "gpu_5b: $name: $*" >&2
    line="$(timeout 300 "$PY" bench/dit_forward.py "${COMMON[@]}" "$@" 2> >(grep -v -E "kept in float32|experimental feature" >&2) | tail -1)"
    if [[ -z "$line" ]]; then
        echo "{\"step\": \"$name\", \"error\": \"no output (see stderr)\"}" | tee -a "$LOG"
    else
        echo "{\"step\": \"$name\", \"result\": $line}" | tee -a "$LOG"
    fi
}

# a backend a build lacks fails alone: each gets its own run against SDPA
run small_sdpa "${SMALL[@]}" --cases joint,rgb --rounds "$R1"
for b in ${BACKENDS//,/ }; do
    run "small_$b" "${SMALL[@]}" --cases "joint,$b" --rounds "$R1"
done
[[ -n "$COMPILE" ]] && run small_compile "${SMALL[@]}" --cases "joint,$COMPILE" --rounds "$R1" --warmup 2
run large_sdpa "${LARGE[@]}" --cases joint,rgb --rounds "$R2"
for b in ${BACKENDS//,/ }; do
    run "large_$b" "${LARGE[@]}" --cases "joint,$b" --rounds "$R2"
done
for m in ${MEMORY//,/ }; do  # one case per process: each peak is its own
    run "memory_$m" "${LARGE[@]}" --cases "$m" --rounds 1
done

if (( SMOKE )); then
    CACHE_ARGS=(--preset unityvideo-small --device cpu --dtype fp32 --frames 17 --height 64 --width 64 --text-tokens 32
                --steps 6 --rounds 1 --threads 1 --cases first-block:0.1,mag:0.25,taylorseer:3,pab:2,faster:2)
else
    CACHE_ARGS=(--preset wan2.2-ti2v-5b --device cuda --dtype bf16 --frames 33 --height 256 --width 256 --steps 20
                --rounds 1 --cases first-block:0.05,first-block:0.1,mag:0.1,mag:0.25,taylorseer:5,pab:2,faster:2)
fi
echo "gpu_5b: step caches: ${CACHE_ARGS[*]}" >&2
line="$(timeout 400 "$PY" bench/caches.py --random "${CACHE_ARGS[@]}" 2> >(grep -v -E "experimental feature" >&2) | tail -1)"
echo "{\"step\": \"step_caches\", \"result\": ${line:-null}}" | tee -a "$LOG"

if [[ -n "${COMFYUI_PATH:-}" && -f bench/comfy_lowvram.py ]]; then
    echo "gpu_5b: ComfyUI low-VRAM path ($COMFYUI_PATH)" >&2
    line="$(timeout 300 "$PY" bench/comfy_lowvram.py --comfy "$COMFYUI_PATH" $( (( SMOKE )) && echo --smoke ) | tail -1)"
    echo "{\"step\": \"comfy_lowvram\", \"result\": ${line:-null}}" | tee -a "$LOG"
fi
echo "gpu_5b: figures in $LOG" >&2
