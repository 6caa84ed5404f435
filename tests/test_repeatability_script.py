"""scripts/cpu_repeatability.py: CPU training repeats bit for bit at one thread count, across processes."""
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "cpu_repeatability.py"


def run_script(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_two_one_thread_runs_print_the_same_accuracy_and_loss():
    done = run_script("--threads", "1,1", "--epochs", "1", "--model", "gradattn_nope_d32")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:]]
    assert len(rows) == 2 and rows[0][0] == rows[1][0] == "1"
    assert rows[0][1:] == rows[1][1:]                       # accuracy, loss and run key
    assert rows[0][3] == "fashionmnist/gradattn_nope_d32-e1-sample/corrected/seed0"


@pytest.mark.parametrize("args, message", [(("--threads", "1,x"), "comma-separated integers"),
                                           (("--threads", "0"), "at least 1"),
                                           (("--epochs", "-1"), "--epochs must be 0")])
def test_bad_arguments_are_refused_naming_the_fix(args, message):
    done = run_script(*args)
    assert done.returncode == 2 and message in done.stderr
