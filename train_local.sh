#!/usr/bin/env bash
# Launch examples/image_classification.py through torchrun.
#
#   ./train_local.sh                 the demo: teacher, student baseline and distilled student on the
#                                    bundled digits data (CPU is fine), then their three test top-1 accuracies
#   ./train_local.sh CONFIG [ARGS]   one run of CONFIG; ARGS go to the runner (--set k=v, -adjust_lr, ...)
#
# Environment: NUM_GPUS (processes on this node; default: the visible GPUs, or 1 CPU process),
# NNODES (1), NODE_RANK (0), RDZV_ENDPOINT (host:port of node 0, needed when NNODES > 1),
# LOG (log file), PYTHON (python3).
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [[ -z "${NUM_GPUS:-}" ]]; then
  NUM_GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
  [[ "$NUM_GPUS" -ge 1 ]] || NUM_GPUS=1
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}

launch() {
  local rendezvous=(--standalone)
  if [[ "$NNODES" -gt 1 ]]; then
    : "${RDZV_ENDPOINT:?set RDZV_ENDPOINT=host:port of node 0 when NNODES > 1}"
    rendezvous=(--rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" --node_rank="$NODE_RANK")
  fi
  "$PYTHON" -m torch.distributed.run --nnodes="$NNODES" --nproc_per_node="$NUM_GPUS" "${rendezvous[@]}" \
    examples/image_classification.py --world_size $((NUM_GPUS * NNODES)) "$@"
}

if [[ $# -ge 1 ]]; then
  config=$1; shift
  launch --config "$config" ${LOG:+--log "$LOG"} "$@"
  exit
fi

# The demo: three runs whose checkpoints all live in one fresh folder.
demo=runs/demo-$(date +%Y%m%d-%H%M%S)
mkdir -p "$demo"
echo "distillkit demo: writing to $demo"
launch --config configs/digits/teacher_resnet20.yaml --run-dir "$demo/teacher" \
  --set models.student_model.ckpt="$demo/teacher.pt"
launch --config configs/digits/student_resnet8_baseline.yaml --run-dir "$demo/student_baseline" \
  --set models.student_model.ckpt="$demo/student_baseline.pt"
launch --config configs/digits/kd_resnet8_from_resnet20.yaml --run-dir "$demo/student_kd" -student_only \
  --set models.teacher_model.ckpt="$demo/teacher.pt" --set models.student_model.ckpt="$demo/student_kd.pt"
"$PYTHON" - "$demo" <<'PY'
import json, sys
demo = sys.argv[1]
print(f"\nTop-1 accuracy on the held-out digits split ({demo}):")
for label, run in (("teacher cifar_resnet20", "teacher"), ("student cifar_resnet8 alone", "student_baseline"),
                   ("student cifar_resnet8 + KD", "student_kd")):
    result = json.load(open(f"{demo}/{run}/results.json"))["student"]
    print(f"  {label:<30s} {result['top1']:6.2f}%")
PY
