#!/usr/bin/env bash
# minDALL-E at its real size on this machine's CPU, with random weights, each step after the
# other (never two at once), the figures side by side in WORK/results.json:
#   release   `make_upstream_checkpoints --size SIZE` (full: 42 layers, width 1536, 1.3B parameters);
#   export    training.export.mindalle_pack into packs-fp32/mindalle-SIZE, the generator's
#             weights in one shared file (as a full-size export needs them, at every size);
#   quantize  training.quantize: its int8 copy, packs-int8/mindalle-SIZE-int8;
#   serve     per pack (float32, int8, float16 with --fp16), the engine alone
#             (bench/mindalle-full.ts): session load time, one generation of 2 candidates;
#   rows      the same engine, one generation per row count in --rows, each in one chunk:
#             time per candidate by batch size (run in the serve step's process);
#   service   per pack, the whole service (bench/mindalle-service.ts): a redis-server of its
#             own, the API and the worker as processes, one POST /generations of 32 candidates
#             keeping 4, followed to its stored images; the worker's start-up, batches, memory;
#   upstream  Kakao Brain's own stage-2 sampling on the same release at the same row counts
#             (training.eval.bench_upstream_mindalle; skipped when --mindalle-src is missing).
# results.json holds each pack's figures under fp32, int8 (and fp16), upstream's under upstream,
# and side_by_side: seconds per candidate by rows (each pack's engine, upstream's code) and the
# service's figures per pack. The peak memory of the Python steps and of the engine's process
# comes from /usr/bin/time -v, the service's worker's from its /proc status. Not run in CI: at
# full size it needs about 21 GB of disk while it quantizes (16 GB after; 3 GB more with --fp16),
# memory for the weights (5 GB float32) and the rows (onnxruntime's arena holds 0.9 to 1.4 GB a
# row while the cache grows, 126 MB an image decoded: the rows step, unbudgeted, fits 8 rows on
# 24 GiB and not 16; the service's worker takes what its budget allows) and an hour or more of CPU.
#
#   bash bench/mindalle-full.sh [--work DIR] [--size small|layer|full] [--fp16] [--rows 1,2,4,8]
#     [--mindalle-src DIR] [--steps release,export,quantize,serve,rows,service,upstream]
#
# --work: the scratch folder, outside the repository (default /tmp/mindalle-full); a build step
# (release, export, quantize) whose output is there already is skipped, so the export can run
# under `nice` while the machine is busy and the timed steps later; the results of timed steps
# run before stay in the figures. --size: the release's size (default full; `layer` is one
# transformer layer at full width, `small` the fixtures' size: the whole pipeline, quickly); one
# size per --work. --fp16 also exports and measures the pack with float16 weights.
# --mindalle-src: a checkout of github.com/kakaobrain/minDALL-E (default /tmp/minDALL-E).
# --rows: the row counts of the rows and upstream steps. The figures are also printed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/mindalle-full
size=full
fp16=false
rows=1,2,4,8
mindalle_src=/tmp/minDALL-E
steps=release,export,quantize,serve,rows,service,upstream
usage="usage: bash bench/mindalle-full.sh [--work DIR] [--size small|layer|full] [--fp16] [--rows LIST] [--mindalle-src DIR] [--steps $steps]"
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --fp16) fp16=true; shift ;;
    --rows) rows=$2; shift 2 ;;
    --mindalle-src) mindalle_src=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "$usage" >&2; exit 2 ;;
  esac
done
case "$size" in small | layer | full) ;; *) echo "$usage" >&2; exit 2 ;; esac
mkdir -p "$work"
# One OpenBLAS thread unless told otherwise: torch's own threads and OpenBLAS's fight over the
# cores here (training/README.md).
export PYTHONPATH=. OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
wants() { [[ ",$steps," == *",$1,"* ]]; }
name=mindalle-$size
variants=(fp32)
[ "$fp16" = true ] && variants+=(fp16)
variants+=(int8)
pack_of() { [ "$1" = int8 ] && echo "$work/packs-int8/$name-int8" || echo "$work/packs-$1/$name"; }

# Runs a command under /usr/bin/time -v, keeping its report in $work/NAME.time.
measured() {
  local step=$1
  shift
  echo "== $step: $*" >&2
  /usr/bin/time -v -o "$work/$step.time" "$@"
}

# A release of another size would be mixed with this one's packs and figures.
if [ -f "$work/release/size" ] && [ "$(cat "$work/release/size")" != "$size" ]; then
  echo "$work holds a release of size $(cat "$work/release/size"), not $size: use another --work" >&2
  exit 2
fi
if wants release && [ ! -f "$work/release/mindalle/stage2_last.ckpt" ]; then
  rm -rf "$work/release"
  measured release /usr/bin/python3 -m training.tests.make_upstream_checkpoints "$work/release" --size "$size" >&2
  /usr/bin/python3 -m training.tests.make_openai_clip_case "$work/release/clip" --checkpoint-only >&2
  echo "$size" >"$work/release/size"
fi

for variant in fp32 fp16; do
  pack=$(pack_of $variant)
  if [ "$variant" = fp16 ] && [ "$fp16" != true ]; then continue; fi
  if wants export && [ ! -f "$pack/manifest.json" ]; then
    rm -rf "$pack"
    mkdir -p "$(dirname "$pack")"
    flags=()
    [ "$variant" = fp16 ] && flags=(--fp16)
    # --external-data: the layout a full-size export gets anyway, at every size.
    measured "export-$variant" /usr/bin/python3 -m training.export.mindalle_pack --checkpoint "$work/release/mindalle" \
      --out "$pack" --name "$name" --external-data "${flags[@]}" \
      --clip-checkpoint "$work/release/clip/ViT-T-16.pt" --clip-bpe "$work/release/clip/bpe.txt.gz" >&2
  fi
done

int8=$(pack_of int8)
if wants quantize && [ ! -f "$int8/manifest.json" ]; then
  rm -rf "$int8"
  mkdir -p "$(dirname "$int8")"
  measured quantize /usr/bin/python3 -m training.quantize "$(pack_of fp32)" --out "$int8" >&2
fi

# One pack per models folder: the engine creates the sessions of every pack it finds.
for variant in "${variants[@]}"; do
  pack=$(pack_of "$variant")
  if { wants serve || wants rows; } && [ -f "$pack/manifest.json" ]; then
    flags=()
    wants rows && flags=(--rows "$rows")
    measured "serve-$variant" node --import tsx bench/mindalle-full.ts --models-dir "$(dirname "$pack")" \
      --model "$(basename "$pack")" "${flags[@]}" >"$work/serve-$variant.json"
  fi
done

for variant in "${variants[@]}"; do
  pack=$(pack_of "$variant")
  if wants service && [ -f "$pack/manifest.json" ]; then
    echo "== service-$variant: $(basename "$pack") through the API and a worker" >&2
    node --import tsx bench/mindalle-service.ts --models-dir "$(dirname "$pack")" --model "$(basename "$pack")" \
      >"$work/service-$variant.json"
  fi
done

if wants upstream; then
  if [ -d "$mindalle_src/dalle" ]; then
    # Both cores for upstream's matrix products too: Debian's PyTorch runs them in OpenBLAS's own
    # threads, which torch.set_num_threads leaves alone.
    OPENBLAS_NUM_THREADS=2 measured upstream /usr/bin/python3 -m training.eval.bench_upstream_mindalle --mindalle-src "$mindalle_src" \
      --checkpoint "$work/release/mindalle" --rows "$rows" >"$work/upstream.json"
  else
    echo "== upstream: skipped, $mindalle_src holds no minDALL-E checkout (--mindalle-src DIR)" >&2
  fi
fi

packs=()
for variant in "${variants[@]}"; do packs+=("$variant=$(pack_of "$variant")"); done
/usr/bin/python3 - "$work" "$size" "${packs[@]}" <<'EOF'
import json, os, re, sys

work, size = sys.argv[1], sys.argv[2]
packs = dict(arg.split("=", 1) for arg in sys.argv[3:])  # variant -> pack folder
variants = list(packs)

def time_report(step):
    path = os.path.join(work, step + ".time")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    return {"peak_rss_gib": round(rss / 2 ** 20, 2), "wall_s": round(seconds)}

def read_json(file):
    path = os.path.join(work, file)
    return json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else None

def pack_files(variant):
    path = os.path.join(packs[variant], "manifest.json")
    if not os.path.exists(path):
        return None
    return {file: entry["bytes"] for file, entry in json.load(open(path))["files"].items()}

results = {"machine": f"{os.cpu_count()} CPU cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB",
           "size": size, "release": time_report("release")}
for variant in variants:
    serve = read_json(f"serve-{variant}.json") or {}
    by_rows = serve.pop("rows", None)
    build = {"quantize": time_report("quantize")} if variant == "int8" else {"export": time_report(f"export-{variant}")}
    results[variant] = {
        **build, "files": pack_files(variant), "serve": serve or None, "rows": by_rows,
        "serve_process": time_report(f"serve-{variant}"), "service": read_json(f"service-{variant}.json")}
upstream = read_json("upstream.json")
results["upstream"] = upstream and {**upstream, "process": time_report("upstream")}

# The seconds per sampled candidate by batch rows: the engine on each pack, upstream's code.
per_candidate = {}
for variant in variants:
    for run in results[variant]["rows"] or []:
        per_candidate.setdefault(str(run["rows"]), {})[f"engine_{variant}"] = round(run["perCandidateMs"] / 1000, 3)
for run in (upstream or {}).get("rows", []):
    per_candidate.setdefault(str(run["rows"]), {})["upstream_pytorch"] = run["per_candidate_s"]

def service_summary(figures):
    keys = ("worker_startup_s", "max_batch_rows", "decode_batch_images", "batch_rows", "first_progress_s",
            "total_s", "sample_s_per_candidate", "images_ok", "budgeted_gib", "grown_gib")
    peak = figures["worker_memory"]["after_generation"]["peak_rss_gib"]
    return {**{key: figures.get(key) for key in keys}, "worker_peak_rss_gib": peak}

service = {variant: service_summary(results[variant]["service"]) for variant in variants if results[variant]["service"]}
results["side_by_side"] = {"sample_s_per_candidate_by_rows": per_candidate, "service": service}
with open(os.path.join(work, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps(results, indent=2))
EOF
