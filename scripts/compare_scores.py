"""Compare two reports' ``scores.json``: every record matched by (model, benchmark, region,
claim), every value both have compared exactly (NaN equals NaN, JSON null is NaN).

    python scripts/compare_scores.py OLD/scores.json NEW/scores.json [--rtol 0]

Prints the keys only one side has (schema changes) and every differing value; exits 1 when
a record is missing on either side or a shared value differs, and 2, with one line naming
the file, when either is not a readable scores.json.
"""

import argparse
import json
import math
import sys


def _fail(message):
    print(f"compare_scores: error: {message}", file=sys.stderr)
    sys.exit(2)


def _records(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError) as error:
        _fail(f"{path}: cannot be read as a report's scores.json ({error})")
    records = data.get("scores") if isinstance(data, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        _fail(f"{path}: not a report's scores.json (no list of score records under 'scores')")
    out = {}
    for record in records:
        key = (record.get("model"), record.get("benchmark"), record.get("region", record.get("group")),
               record.get("claim"))
        out[key] = record
    return out


def _same(a, b, rtol):
    if isinstance(a, (int, float)) or a is None:
        if isinstance(b, (int, float)) or b is None:
            a = math.nan if a is None else float(a)
            b = math.nan if b is None else float(b)
            if math.isnan(a) or math.isnan(b):
                return math.isnan(a) and math.isnan(b)
            return a == b or abs(a - b) <= rtol * max(abs(a), abs(b))
    return a == b


def compare(old_path, new_path, rtol=0.0):
    old, new = _records(old_path), _records(new_path)
    problems = []
    for key in sorted(set(old) ^ set(new), key=str):
        problems.append(f"record only in {'old' if key in old else 'new'}: {key}")
    only_old, only_new, compared = set(), set(), 0
    for key in sorted(set(old) & set(new), key=str):
        a, b = old[key], new[key]
        only_old |= set(a) - set(b)
        only_new |= set(b) - set(a)
        for field in sorted(set(a) & set(b)):
            compared += 1
            if not _same(a[field], b[field], rtol):
                problems.append(f"{key} {field}: {a[field]!r} != {b[field]!r}")
    print(f"{len(set(old) & set(new))} records matched, {compared} values compared")
    print(f"keys only in old: {sorted(only_old)}")
    print(f"keys only in new: {sorted(only_new)}")
    for problem in problems:
        print(problem)
    print("IDENTICAL VALUES" if not problems else f"{len(problems)} DIFFERENCES")
    return 0 if not problems else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rtol", type=float, default=0.0)
    args = parser.parse_args()
    return compare(args.old, args.new, args.rtol)


if __name__ == "__main__":
    sys.exit(main())
