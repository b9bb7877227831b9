#!/usr/bin/env bash
# Rebuilds the bundled default model (assets/models/sprint-emoji-128) and its evaluation report (assets/eval) from
# Debian-packaged data only, with our own commands. Called by `./bootstrap.sh model [--smoke]`.
#
#   training/rebuild_bundled_model.sh BUILD_DIR PYTHON [--smoke]
#
# Stages (each is skipped when its output model exists, and resumed when its run folder has a checkpoint):
#   1. dataset     training/data/build_emoji_dataset.py   -> out/data/emoji128     (Noto + EmojiOne, CLDR names)
#   2. tokenizer   training/data/train_tokenizer.py       -> training/runs/emoji128/tokenizer
#   3. autoencoder sprint-train autoencoder               -> training/runs/emoji128/autoencoder/model/vae
#   4. teacher     sprint-train pretrain                  -> training/runs/emoji128/teacher/model
#   5. controlnet  sprint-train controlnet                -> training/runs/emoji128/controlnet/model
#   6. student     sprint-train distill (sCM + LADD)      -> training/runs/emoji128/student/model
#   7. ablations   sprint-train distill, 600 generator updates each: sCM only, LADD only, sCM + LADD, max-time 0 %
#   8. classifier  sprint-train classifier (feature net of the Fréchet distance)
#   9. eval        sprint-train eval                      -> assets/eval/report.md + grids
#  10. publish     student/model -> assets/models/sprint-emoji-128 (+ model card)
# The first bundled model (64 px, Noto only, edge-map conditions) was made by the same stages with
# training/configs/emoji; its runs are in training/runs/emoji.
# --smoke runs every stage for 2 steps on 40 emoji into out/smoke (CI uses the same path through the slow tests);
# it never touches training/runs or assets.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:?usage: rebuild_bundled_model.sh BUILD_DIR PYTHON [--smoke]}"
py="${2:?usage: rebuild_bundled_model.sh BUILD_DIR PYTHON [--smoke]}"
smoke="${3:-}"
train="$build/bin/sprint-train"
cd "$here"
cfg=training/configs/emoji128  # relative: the paths end up in reports and configs that are committed
log() { printf '\033[1m[model]\033[0m %s\n' "$*" >&2; }

runs=training/runs/emoji128
data=out/data/emoji128
extra=()
if [ "$smoke" = "--smoke" ]; then
  runs=out/smoke/runs
  data=out/smoke/data
  rm -rf out/smoke
  extra=(--steps 2 --batch 8 --ckpt-every 1 --sample-every 2)
fi

# run STAGE OUT COMMAND CONFIG [--set ...]: skip when OUT/model exists, resume when OUT has a checkpoint.
run() {
  local name="$1" out="$2" command="$3" config="$4"; shift 4
  if [ -e "$out/model" ]; then log "$name: $out/model exists, skipped"; return 0; fi
  local resume=()
  [ -f "$out/checkpoints/latest" ] && resume=(--resume)
  log "$name: sprint-train $command --config $config --out $out ${resume[*]} $*"
  "$train" "$command" --config "$config" --out "$out" --data-dir "$data" "${resume[@]}" "${extra[@]}" "$@"
}

if [ ! -f "$data/dataset.json" ]; then
  log "dataset -> $data"
  limit=(); [ "$smoke" = "--smoke" ] && limit=(--limit 40 --heldout-fraction 0.2)
  "$py" training/data/build_emoji_dataset.py --out "$data" "${limit[@]}"
fi
vocab=1024; [ "$smoke" = "--smoke" ] && vocab=320
if [ ! -f "$runs/tokenizer/tokenizer.model" ]; then
  log "tokenizer -> $runs/tokenizer"
  "$py" training/data/train_tokenizer.py --captions "$data/captions.txt" --out "$runs/tokenizer" --vocab-size "$vocab"
fi
"$train" conditions --set data.dir="$data" --set preview=24 >/dev/null

run autoencoder "$runs/autoencoder" autoencoder "$cfg/autoencoder.json"
run teacher "$runs/teacher" pretrain "$cfg/teacher.json" \
  --set vae="$runs/autoencoder/model/vae" --set tokenizer="$runs/tokenizer/tokenizer.model"
run controlnet "$runs/controlnet" controlnet "$cfg/controlnet.json" --set teacher="$runs/teacher/model"
run student "$runs/student" distill "$cfg/distill.json" --set teacher="$runs/controlnet/model"
# The ablations share one budget, 600 generator updates of batch 16: an sCM-only step is a generator update, while
# with LADD the G and D phases alternate, so those arms take twice the steps.
ablation_steps() { [ "$smoke" = "--smoke" ] && return 0; echo "--set steps=$1"; }
run "ablation sCM only" "$runs/student-scm" distill "$cfg/distill.json" --set teacher="$runs/controlnet/model" \
  --set mode=scm $(ablation_steps 600)
run "ablation LADD only" "$runs/student-ladd" distill "$cfg/distill.json" --set teacher="$runs/controlnet/model" \
  --set mode=ladd $(ablation_steps 1200)
run "ablation sCM + LADD" "$runs/student-scm-ladd" distill "$cfg/distill.json" --set teacher="$runs/controlnet/model" \
  $(ablation_steps 1200)
run "ablation max-time 0 %" "$runs/student-maxtime0" distill "$cfg/distill.json" --set teacher="$runs/controlnet/model" \
  --set ladd.largest_timestep_prob=0 $(ablation_steps 1200)
run classifier "$runs/classifier" classifier "$cfg/classifier.json"

report=assets/eval; model_dest=assets/models/sprint-emoji-128
if [ "$smoke" = "--smoke" ]; then report=out/smoke/eval; model_dest=out/smoke/sprint-emoji-128; fi
log "eval -> $report"
"$train" eval --config "$cfg/eval.json" --set data.dir="$data" --set out="$report" \
  --set feature_net="$runs/classifier/model" --set teacher="$runs/controlnet/model" \
  --set "students={\"bundled\": \"$runs/student/model\", \"scm\": \"$runs/student-scm/model\", \"ladd\": \"$runs/student-ladd/model\", \"scm+ladd\": \"$runs/student-scm-ladd/model\", \"scm+ladd maxtime0\": \"$runs/student-maxtime0/model\"}" \
  $( [ "$smoke" = "--smoke" ] && echo "--set teacher_steps=[2] --set limit=4 --set transfer.limit=4 --set fd.seeds_per_item=1 --set fd.reference=heldout --set bootstrap.resamples=20" )

log "publish -> $model_dest"
rm -rf "$model_dest.tmp"
mkdir -p "$(dirname "$model_dest")"
cp -r "$runs/student/model" "$model_dest.tmp"
"$py" training/write_model_card.py --runs "$runs" --data "$data" --eval "$report/report.json" --out "$model_dest.tmp/README.md"
rm -rf "$model_dest"
mv "$model_dest.tmp" "$model_dest"
log "done: $model_dest ($(du -sh "$model_dest" | cut -f1))"
