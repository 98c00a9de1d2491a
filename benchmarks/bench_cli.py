"""``mycloset --help`` against ``python -c "import torch"``: the start-up a user waits for, in fresh processes.

Run from the repository root: ``python benchmarks/bench_cli.py --repeat 5``. Prints the median wall time of each
command and their ratio (target: the help below the torch import, ratio < 1).
"""

import argparse
import subprocess
import sys
from pathlib import Path

from timing import timed

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {
    "mycloset --help": [sys.executable, "-m", "mycloset_assets.cli", "--help"],
    "mycloset try-on --help": [sys.executable, "-m", "mycloset_assets.cli", "try-on", "--help"],
    "mycloset models list --help": [sys.executable, "-m", "mycloset_assets.cli", "models", "list", "--help"],
    'python -c "import torch"': [sys.executable, "-c", "import torch"],
    'python -c "import dagster"': [sys.executable, "-c", "import dagster"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    seconds = {}
    for name, command in COMMANDS.items():
        seconds[name] = timed(
            lambda c=command: subprocess.run(c, cwd=ROOT, check=True, capture_output=True), args.repeat
        )
        print(f"{name:32s} {seconds[name] * 1000:8.1f} ms")
    ratio = seconds["mycloset --help"] / seconds['python -c "import torch"']
    print(f"mycloset --help / import torch: {ratio:.3f} ({'met' if ratio < 1 else 'not met'}: target < 1)")


if __name__ == "__main__":
    main()
