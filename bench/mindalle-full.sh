#!/usr/bin/env bash
# minDALL-E at its real size on this machine's CPU, with random weights: the release written by
# `make_upstream_checkpoints --size full` (42 layers, width 1536, 1.3B parameters), exported by
# training.export.mindalle_pack, then served by the engine (bench/mindalle-full.ts): session load
# time, one generation of 2 candidates end to end, time per candidate. Each step's peak memory
# comes from /usr/bin/time -v. Not run in CI: it needs about 16 GB of disk (22 GB with --fp16).
#
#   bash bench/mindalle-full.sh [--work DIR] [--fp16] [--steps release,export,serve]
#
# --work: the scratch folder, outside the repository (default /tmp/mindalle-full); a step whose
# output is there already is skipped, so the export can run under `nice` while the machine is
# busy and the timed step later. --fp16 also exports and serves the pack with float16 weights.
# The figures go to WORK/results.json and are printed.
set -euo pipefail
cd "$(dirname "$0")/.."
work=/tmp/mindalle-full
fp16=false
steps=release,export,serve
while [ $# -gt 0 ]; do
  case "$1" in
    --work) work=$2; shift 2 ;;
    --fp16) fp16=true; shift ;;
    --steps) steps=$2; shift 2 ;;
    *) echo "usage: bash bench/mindalle-full.sh [--work DIR] [--fp16] [--steps release,export,serve]" >&2; exit 2 ;;
  esac
done
mkdir -p "$work"
export PYTHONPATH=. OPENBLAS_NUM_THREADS=1
variants=(fp32)
[ "$fp16" = true ] && variants+=(fp16)
wants() { [[ ",$steps," == *",$1,"* ]]; }

# Runs a command under /usr/bin/time -v, keeping its report in $work/NAME.time.
measured() {
  local name=$1
  shift
  echo "== $name: $*" >&2
  /usr/bin/time -v -o "$work/$name.time" "$@"
}

if wants release && [ ! -f "$work/release/mindalle/stage2_last.ckpt" ]; then
  rm -rf "$work/release"
  measured release /usr/bin/python3 -m training.tests.make_upstream_checkpoints "$work/release" --size full >&2
  /usr/bin/python3 -m training.tests.make_openai_clip_case "$work/release/clip" --checkpoint-only >&2
fi

for variant in "${variants[@]}"; do
  pack=$work/packs-$variant/mindalle-full
  if wants export && [ ! -f "$pack/manifest.json" ]; then
    rm -rf "$pack"
    mkdir -p "$(dirname "$pack")"
    flags=()
    [ "$variant" = fp16 ] && flags=(--fp16)
    measured "export-$variant" /usr/bin/python3 -m training.export.mindalle_pack --checkpoint "$work/release/mindalle" \
      --out "$pack" --name mindalle-full "${flags[@]}" \
      --clip-checkpoint "$work/release/clip/ViT-T-16.pt" --clip-bpe "$work/release/clip/bpe.txt.gz" >&2
  fi
  if wants serve; then
    # One pack per models folder: the engine creates the sessions of every pack it finds.
    measured "serve-$variant" node --import tsx bench/mindalle-full.ts --models-dir "$(dirname "$pack")" \
      >"$work/serve-$variant.json"
  fi
done

/usr/bin/python3 - "$work" "${variants[@]}" <<'EOF'
import json, os, re, sys

work, variants = sys.argv[1], sys.argv[2:]

def time_report(name):
    path = os.path.join(work, name + ".time")
    if not os.path.exists(path):
        return None
    text = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    seconds = sum(float(p) * 60 ** i for i, p in enumerate(reversed(wall.split(":"))))
    return {"peak_rss_gib": round(rss / 2 ** 20, 2), "wall_s": round(seconds)}

def pack_files(variant):
    path = os.path.join(work, f"packs-{variant}", "mindalle-full", "manifest.json")
    if not os.path.exists(path):
        return None
    return {name: entry["bytes"] for name, entry in json.load(open(path))["files"].items()}

results = {"machine": f"{os.cpu_count()} CPU cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2 ** 30:.0f} GiB",
           "release": time_report("release")}
for variant in variants:
    serve = os.path.join(work, f"serve-{variant}.json")
    results[variant] = {"export": time_report(f"export-{variant}"), "files": pack_files(variant),
                        "serve": json.load(open(serve)) if os.path.exists(serve) and os.path.getsize(serve) else None,
                        "serve_process": time_report(f"serve-{variant}")}
with open(os.path.join(work, "results.json"), "w") as f:
    json.dump(results, f, indent=2)
print(json.dumps(results, indent=2))
EOF
