#!/usr/bin/env python3
"""Prints one closing line for the whole test run: N passed, N failed, N skipped.

Counts individual cases: TAP subtests for tests that speak TAP (the cmocka unit
tests and the e2e harness), one case for tests judged by exit status alone."""
import json
import re
import sys

passed = failed = skipped = 0
with open(sys.argv[1]) as f:
    for line in f:
        t = json.loads(line)
        result = t.get("result", "")
        out = t.get("stdout", "") or ""
        if t.get("protocol") == "tap" or re.search(r"^1\.\.\d+", out, re.M):
            cases = re.findall(r"^(not ok|ok)\b[^\n]*", out, re.M)
            n_skip = sum(1 for c in cases if re.search(r"#\s*skip", c, re.I))
            n_fail = sum(1 for c in cases if c.startswith("not ok") and not re.search(r"#\s*(skip|todo)", c, re.I))
            n_pass = len(cases) - n_skip - n_fail
            if not cases:
                if result == "SKIP":
                    skipped += 1
                elif result in ("OK", "EXPECTEDFAIL"):
                    passed += 1
                else:
                    failed += 1
                continue
            if result not in ("OK", "SKIP", "EXPECTEDFAIL") and n_fail == 0:
                n_fail = 1  # crashed or timed out after its last reported case
            passed += n_pass
            failed += n_fail
            skipped += n_skip
        elif result == "SKIP":
            skipped += 1
        elif result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
