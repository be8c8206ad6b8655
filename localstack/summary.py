"""Prints the test run's summary from nextest's JUnit file: how many tests passed,
failed and timed out, and the name of each that did not pass. Used by run-tests.sh so
that its last lines say how the whole run went, whatever ran after the tests.

usage: summary.py JUNIT_XML NEXTEST_EXIT_CODE
"""

import sys
import xml.etree.ElementTree as ET


def main() -> int:
    path, code = sys.argv[1], int(sys.argv[2])
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as e:
        # No JUnit file: the build failed or nextest stopped before running tests.
        print(f"tests: no results ({e}); cargo nextest exited {code} — see its output above")
        return 0
    passed, failed, timed_out, skipped = 0, [], [], 0
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')} {case.get('name', '')}".strip()
        problems = list(case.iter("failure")) + list(case.iter("error"))
        if case.find("skipped") is not None:
            skipped += 1
        elif not problems:
            passed += 1
        elif any("timed out" in (p.get("message") or "") or p.get("type") == "test timeout"
                 for p in problems):
            timed_out.append(name)
        else:
            failed.append(name)
    total = passed + len(failed) + len(timed_out)
    print(f"tests: {total} run: {passed} passed, {len(failed)} failed, "
          f"{len(timed_out)} timed out" + (f", {skipped} skipped" if skipped else ""))
    for n in failed:
        print(f"  FAILED     {n}")
    for n in timed_out:
        print(f"  TIMED OUT  {n}")
    if code != 0 and not failed and not timed_out:
        print(f"  (cargo nextest exited {code} without a failed test: a build or setup "
              "problem — see its output above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
