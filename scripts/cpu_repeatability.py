"""Is CPU training bit-for-bit repeatable? Train the 02_train quick-profile run (embedded Fashion-MNIST
sample, 3 epochs) once per thread count given, each in a fresh folder and a fresh process, and print its
test accuracy and loss. Equal thread counts give equal numbers; different counts split the sums
differently and drift apart (docs/notebooks.md).

    python scripts/cpu_repeatability.py                      # threads 1, 1, 2; ResNet-18, corrected
    python scripts/cpu_repeatability.py --threads 2,2 --model gradattn_lpe --protocol paper
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TRAIN_ONE = """
import json, sys, torch
from pathlib import Path
from gradattn import report
from gradattn.train import run_experiment
cfg = report.profile_config("quick", "fashionmnist", device="cpu", out=Path(sys.argv[1]), model=sys.argv[2],
                            protocol=sys.argv[3], seed=int(sys.argv[4]), epochs=int(sys.argv[5]) or None)
run = run_experiment(cfg)
test = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())["test"]
print(json.dumps({"run_key": cfg.run_key, "threads": torch.get_num_threads(),
                  "accuracy": test["accuracy"], "loss": test["loss"]}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,1,2", help="comma-separated thread counts, one run each")
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--protocol", default="corrected", choices=("paper", "corrected"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=0, help="0 (default): the quick profile's 3")
    args = parser.parse_args(argv)
    try:
        counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads takes comma-separated integers such as 1,1,2, got {args.threads!r}")
    if args.epochs < 0:
        parser.error(f"--epochs must be 0 (the profile's) or more, got {args.epochs}")
    if not counts or min(counts) < 1:
        parser.error(f"--threads needs thread counts of at least 1, got {args.threads!r}")
    print(f"{'threads':>7}  {'test accuracy':>13}  test loss")
    for threads in counts:
        with tempfile.TemporaryDirectory() as out:
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            done = subprocess.run([sys.executable, "-c", TRAIN_ONE, out, args.model, args.protocol,
                                   str(args.seed), str(args.epochs)], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        row = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{row['threads']:>7}  {row['accuracy']:>13.4f}  {row['loss']!r}   {row['run_key']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
