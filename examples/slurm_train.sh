#!/usr/bin/env bash
# Example SLURM job: 2 nodes x 8 GPUs, one torchrun per node (srun), one process per GPU (torchrun).
#   sbatch examples/slurm_train.sh configs/ilsvrc2012/tat/resnet18_from_resnet34_attn.yaml [runner args]
#SBATCH --job-name=distillkit
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=1
#SBATCH --gpus-per-node=8
#SBATCH --cpus-per-task=64
#SBATCH --time=72:00:00
#SBATCH --signal=TERM@120
set -euo pipefail
CONFIG=${1:?usage: sbatch examples/slurm_train.sh CONFIG [runner args]}; shift
head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
export NUM_GPUS=${SLURM_GPUS_ON_NODE:-8} NNODES=$SLURM_NNODES RDZV_ENDPOINT="$head_node:29500"
# Each node's torchrun learns its rank from the c10d rendezvous; NODE_RANK is informative only.
srun --kill-on-bad-exit=1 bash -c "NODE_RANK=\$SLURM_NODEID ./train_local.sh '$CONFIG' --run-dir runs/slurm-$SLURM_JOB_ID $*"
