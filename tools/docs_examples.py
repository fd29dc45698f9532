#!/usr/bin/env python3
"""docs_examples.py - keep docs/clients.md's code blocks identical to the
runnable examples in docs/examples/ (which test_examples.py runs).

In docs/clients.md, a block preceded by a marker line

    <!-- example: docs/examples/python/publish.py -->

must hold that file's exact content. Every file under docs/examples/ must
appear once.

    python3 tools/docs_examples.py           check; exit 1 and say what differs
    python3 tools/docs_examples.py --write   rewrite the blocks from the files
"""
import difflib
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(ROOT, "docs", "clients.md")
EXAMPLES = os.path.join(ROOT, "docs", "examples")
SKIP_DIRS = {"node_modules", "__pycache__"}
SKIP_FILES = {"package-lock.json"}     # what `npm install` leaves next to the examples

MARKER = re.compile(r"^<!-- example: (\S+) -->$")
FENCE = re.compile(r"^(`{3,})([A-Za-z0-9_+-]*)$")
LANG = {".py": "python", ".mjs": "js", ".js": "js", ".go": "go", ".mod": "go",
        ".html": "html", ".json": "json"}


def example_files():
    out = []
    for d, dirs, files in os.walk(EXAMPLES):
        dirs[:] = sorted(x for x in dirs if x not in SKIP_DIRS)
        out.extend(os.path.relpath(os.path.join(d, f), ROOT) for f in sorted(files)
                   if f not in SKIP_FILES)
    return out


def blocks(text):
    """[(path, start, end, content)]: the lines [start, end) of the fenced
    block after each marker (fences included), and what is between them."""
    lines = text.splitlines(keepends=True)
    found = []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i].rstrip("\n"))
        if not m:
            i += 1
            continue
        path = m.group(1)
        f = FENCE.match(lines[i + 1].rstrip("\n")) if i + 1 < len(lines) else None
        if not f:
            raise ValueError("docs/clients.md:%d: no code fence after the marker for %s"
                             % (i + 2, path))
        fence = f.group(1)
        j = i + 2
        while j < len(lines) and lines[j].rstrip("\n") != fence:
            j += 1
        if j == len(lines):
            raise ValueError("docs/clients.md:%d: unclosed code block for %s" % (i + 2, path))
        found.append((path, i + 1, j + 1, "".join(lines[i + 2:j])))
        i = j + 1
    return found


def fenced(path, content):
    longest = max([len(r) for r in re.findall(r"`+", content)] + [0])
    fence = "`" * max(3, longest + 1)
    lang = LANG.get(os.path.splitext(path)[1], "")
    if not content.endswith("\n"):
        content += "\n"
    return "%s%s\n%s%s\n" % (fence, lang, content, fence)


def read(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        return f.read()


def problems(text):
    """What differs between the doc and the files (empty: nothing)."""
    out = []
    found = blocks(text)
    seen = [p for p, _, _, _ in found]
    for p in sorted(set(seen)):
        if seen.count(p) > 1:
            out.append("%s is included %d times" % (p, seen.count(p)))
    files = example_files()
    for p in files:
        if p not in seen:
            out.append("%s is not included in docs/clients.md" % p)
    for path, _, _, content in found:
        if path not in files:
            out.append("docs/clients.md includes %s, which is not a file under docs/examples/"
                       % path)
            continue
        want = read(path)
        if content != want:
            diff = difflib.unified_diff(want.splitlines(True), content.splitlines(True),
                                        path, "docs/clients.md block", n=1)
            out.append("docs/clients.md block for %s differs from the file:\n%s"
                       % (path, "".join(list(diff)[:40])))
    return out


def write(text):
    lines = text.splitlines(keepends=True)
    for path, start, end, _ in reversed(blocks(text)):
        lines[start:end] = [fenced(path, read(path))]
    return "".join(lines)


def main():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    if sys.argv[1:] == ["--write"]:
        new = write(text)
        if new != text:
            with open(DOC, "w", encoding="utf-8") as f:
                f.write(new)
            print("docs/clients.md: blocks rewritten from docs/examples/")
        text = new
    elif sys.argv[1:]:
        sys.exit(__doc__)
    bad = problems(text)
    for p in bad:
        print(p)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
