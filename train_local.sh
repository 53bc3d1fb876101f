#!/usr/bin/env bash
# Launch examples/image_classification.py through torchrun (one process per GPU, or one CPU process).
#
#   ./train_local.sh                  the demo: teacher, student baseline and distilled student on the
#                                     bundled digits data (CPU is fine), then their three test top-1 accuracies
#   ./train_local.sh CONFIG [ARGS]    one run of CONFIG; ARGS go to the runner, never to torchrun:
#
#   ./train_local.sh configs/digits/kd_resnet8_from_resnet20.yaml --set train.num_epochs=3
#   NUM_GPUS=8 ./train_local.sh CONFIG --log log/kd.txt -adjust_lr     # the TaT/seed form of the command
#   LOG=log/kd.txt NUM_GPUS=8 ./train_local.sh CONFIG                  # the same log file, from the environment
#   ./train_local.sh CONFIG --run-dir runs/kd --resume                  # continue a stopped run
#   NNODES=2 NODE_RANK=0 RDZV_ENDPOINT=node0:29400 NUM_GPUS=8 ./train_local.sh CONFIG   # on each node
#
# CONFIG, --run-dir, --log/LOG and every other path are read from the directory you call the script from
# (it may live anywhere: ../distillkit/train_local.sh CONFIG works).  The runner's options are those of
# `distillkit train` (README, "Command line").  A mistake in the config ends with the runner's one-paragraph
# error and exit status 2; a rank that crashes otherwise ends the job with that rank's exit status.
#
# Environment: NUM_GPUS (processes on this node; default: the visible GPUs, or 1 CPU process),
# NNODES (1), NODE_RANK (0), RDZV_ENDPOINT (host:port of node 0, needed when NNODES > 1),
# LOG (log file, as --log), PYTHON (python3).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's distillkit, from any directory
if [[ -z "${NUM_GPUS:-}" ]]; then
  NUM_GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')
  [[ "$NUM_GPUS" -ge 1 ]] || NUM_GPUS=1
fi
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}

# torchrun's own command line parser would read the runner's options too (`--log` is an ambiguous
# abbreviation of its --log-dir / --log-line-prefix-template / --logs-specs): it parses torchrun's options
# and the script path alone, and the runner's arguments are handed to the processes untouched.  A failed
# rank is reported by its exit status instead of torchrun's ChildFailedError traceback; exit status 2 means
# the runner has already printed its one-paragraph error.
read -r -d '' LAUNCHER <<'PY' || true
import logging
import sys

count = int(sys.argv[1])
torchrun_argv, script, script_args = sys.argv[2:2 + count], sys.argv[2 + count], sys.argv[3 + count:]
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser, run

# The agent's "failed (exitcode: N) ..." and "Sending process N closing signal SIGTERM" (to the other ranks
# once one has failed) lines: the failure is reported below, once, in words.
logging.getLogger("torch.distributed.elastic.multiprocessing.api").addFilter(
    lambda record: not str(record.msg).startswith(("failed (exitcode", "Sending process")))

args = get_args_parser().parse_args(torchrun_argv + [script])
args.training_script_args = script_args
try:
    run(args)
except ChildFailedError as failed:
    rank, failure = failed.get_first_failure()
    code = failure.exitcode
    if code != 2:
        how = f"signal {failure.signal_name()}" if code < 0 else f"exit status {code}"
        print(f"train_local.sh: rank {rank} (pid {failure.pid}) ended with {how}; its output is above.",
              file=sys.stderr)
    sys.exit(code if code > 0 else 128 - code)
except KeyboardInterrupt:
    sys.exit(130)
PY

launch() {
  local torchrun_args=(--nnodes="$NNODES" --nproc_per_node="$NUM_GPUS")
  if [[ "$NNODES" -gt 1 ]]; then
    : "${RDZV_ENDPOINT:?set RDZV_ENDPOINT=host:port of node 0 when NNODES > 1}"
    torchrun_args+=(--rdzv_backend=c10d --rdzv_endpoint="$RDZV_ENDPOINT" --node_rank="$NODE_RANK")
  else
    torchrun_args+=(--standalone)
  fi
  "$PYTHON" -c "$LAUNCHER" "${#torchrun_args[@]}" "${torchrun_args[@]}" \
    "$here/examples/image_classification.py" --world_size $((NUM_GPUS * NNODES)) "$@"
}

if [[ $# -ge 1 ]]; then
  config=$1; shift
  log_args=()
  [[ -z "${LOG:-}" ]] || log_args=(--log "$LOG")
  launch --config "$config" ${log_args[@]+"${log_args[@]}"} "$@"
  exit
fi

# The demo: three runs whose checkpoints all live in one fresh folder under the checkout's runs/.
cd "$here"
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
