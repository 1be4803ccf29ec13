"""Do two cross-dataset results.json files hold the same records? Every field of every (pair, method) record
is compared exactly, except wall times, paths, the recorded config (its keys change when switches go) and the
fields of removed switches (`other_scoring`, `centering`).

    python docs/results/simplification/same_records.py BEFORE/results.json AFTER/results.json
"""

from __future__ import annotations

import json
import sys

IGNORED = {"seconds", "train_seconds", "out_dir", "config", "stage1_reused", "other_scoring", "centering"}


def _drop_ignored(value):
    if isinstance(value, dict):
        return {k: _drop_ignored(v) for k, v in value.items() if k not in IGNORED and "seconds" not in k}
    if isinstance(value, list):
        return [_drop_ignored(v) for v in value]
    return value


def records(path: str) -> dict[tuple[str, str], dict]:
    runs = json.loads(open(path).read())["runs"]
    return {(run["pair"], run["method"]): _drop_ignored(run) for run in runs}


def main(before_path: str, after_path: str) -> int:
    before, after = records(before_path), records(after_path)
    differ = [key for key in before if key in after and before[key] != after[key]]
    missing = sorted(set(before) ^ set(after))
    for key in differ:
        fields = [f for f in before[key] if before[key][f] != after[key].get(f)]
        print(f"differs: {key[0]} {key[1]}: {fields}")
    print(
        f"{len(before)} records before, {len(after)} after; {len(set(before) & set(after)) - len(differ)} "
        f"identical, {len(differ)} differ, {len(missing)} in one file only {missing}"
    )
    return 1 if differ or missing else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
