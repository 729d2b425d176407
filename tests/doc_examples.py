#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0
"""The command blocks of the Markdown documents, for tests/cases/doc_examples.

Every code block (indented by four spaces or more after a blank line, or
fenced) must be preceded by a directive, an HTML comment that Markdown
does not show:

    <!-- example: run -->              run it, as written
    <!-- example: run
    sed: s|-L 100G|-L 512M|            a substitution the test needs (of
                                       text, not a regex; g: every one)
    before: dmsetup create ...         commands run first, not shown
    after: dmsetup remove ...          commands run after, not shown
    # why                              a remark
    -->
    <!-- example: output -->           what a command prints, or a log
    <!-- example: syntax -->           a grammar, not a command
    <!-- example: file PATH -->        must equal PATH of this tree (but
                                       for its comments)
    <!-- example: skip: REASON -->     a command the test cannot run here

A command of a run block whose comment starts with "fails" (make
uninstall   # fails: ...) must fail; every other command must succeed.

  doc_examples.py check FILE...    every block has a valid directive
  doc_examples.py script FILE      a bash script running the run blocks
  doc_examples.py files FILE...    checks the file blocks (from the top)
"""

import re
import shlex
import sys

KINDS = ("run", "output", "syntax", "file", "skip")


class Block:
    def __init__(self, path, line, text):
        self.path, self.line, self.text = path, line, text
        self.kind = None
        self.arg = ""
        self.sed, self.before, self.after = [], [], []
        self.error = None

    def where(self):
        return f"{self.path}:{self.line}"


def parse_directive(block, comment):
    lines = [ln.strip() for ln in comment.strip().splitlines()]
    head = lines[0]
    m = re.match(r"example:\s*(\w+)\s*(?::\s*)?(.*)$", head)
    if not m or m.group(1) not in KINDS:
        block.error = f"bad directive '{head}'"
        return
    block.kind, block.arg = m.group(1), m.group(2).strip()
    if block.kind == "skip" and not block.arg:
        block.error = "skip without a reason"
    if block.kind == "file" and not block.arg:
        block.error = "file without a path"
    for ln in lines[1:]:
        if not ln or ln.startswith("#"):
            continue
        key, _, val = ln.partition(":")
        if block.kind != "run" or key not in ("sed", "before", "after"):
            block.error = f"bad directive line '{ln}'"
            return
        getattr(block, key).append(val.strip())


def blocks(path):
    """The code blocks of PATH, each with its directive parsed."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    comment = None          # the last HTML comment, if only blank lines followed
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.lstrip().startswith("<!--"):
            j = i
            while "-->" not in lines[j]:
                j += 1
            text = "\n".join(lines[i:j + 1]).strip()
            comment = text[4:text.index("-->")]
            i = j + 1
            continue
        if ln.startswith("```"):
            j = i + 1
            while not lines[j].startswith("```"):
                j += 1
            b = Block(path, i + 2, "\n".join(lines[i + 1:j]))
            i = j + 1
        elif (ln.startswith("    ") and ln.strip() and
              (i == 0 or not lines[i - 1].strip())):
            indent = len(ln) - len(ln.lstrip())
            j = i
            while j < len(lines) and (lines[j].startswith(" " * indent) or
                                      (not lines[j].strip() and j + 1 < len(lines) and
                                       lines[j + 1].startswith(" " * indent))):
                j += 1
            b = Block(path, i + 1,
                      "\n".join(x[indent:] for x in lines[i:j]))
            i = j
        else:
            if ln.strip():
                comment = None
            i += 1
            continue
        if comment is None:
            b.error = "no <!-- example: ... --> directive before it"
        else:
            parse_directive(b, comment)
        comment = None
        out.append(b)
    return out


def check(paths):
    bad = 0
    n = {}
    for p in paths:
        for b in blocks(p):
            if b.error:
                print(f"{b.where()}: {b.error}")
                bad += 1
            else:
                n[b.kind] = n.get(b.kind, 0) + 1
    print("# blocks: " + ", ".join(f"{v} {k}" for k, v in sorted(n.items())))
    return 1 if bad else 0


def files(paths):
    bad = 0
    for p in paths:
        for b in blocks(p):
            if b.kind != "file":
                continue
            with open(b.arg, encoding="utf-8") as f:
                want = [x for x in f.read().split("\n")
                        if x.strip() and not x.startswith("#")]
            if [x for x in b.text.split("\n") if x.strip()] != want:
                print(f"{b.where()}: differs from {b.arg}")
                bad += 1
    return 1 if bad else 0


def expect_failures(text):
    """A command whose comment starts with "fails" must fail."""
    out = []
    for ln in text.split("\n"):
        m = re.search(r"\s#\s*fails\b", ln)
        if m and not ln.rstrip().endswith("\\"):
            cmd = ln[:m.start()].strip()
            msg = shlex.quote("expected to fail, but did not: " + cmd)
            ln = f"if {cmd}; then _fail {msg}; fi"
        out.append(ln)
    return "\n".join(out)


def script(path):
    """Bash that runs the run blocks of PATH in order, in one shell."""
    out = []
    for b in blocks(path):
        if b.error:
            sys.exit(f"{b.where()}: {b.error}")
        if b.kind != "run":
            if b.kind == "skip":
                out.append(f"echo {shlex.quote('# skipped ' + b.where() + ': ' + b.arg)}")
            continue
        text = b.text
        for s in b.sed:
            m = re.match(r"s(.)(.*?)\1(.*?)\1(g?)$", s)
            if not m:
                sys.exit(f"{b.where()}: bad sed '{s}'")
            if m.group(2) not in text:
                sys.exit(f"{b.where()}: sed '{s}' changes nothing")
            text = text.replace(m.group(2), m.group(3),
                                -1 if m.group(4) else 1)
        for c in b.before:
            out.append(c)
        out.append("_example_begin " + shlex.quote(b.where()))
        out.append(expect_failures(text))
        out.append("_example_end")
        for c in b.after:
            out.append(c)
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cmd, paths = sys.argv[1], sys.argv[2:]
    if cmd == "check":
        sys.exit(check(paths))
    if cmd == "files":
        sys.exit(files(paths))
    if cmd == "script" and len(paths) == 1:
        sys.stdout.write(script(paths[0]))
        return
    sys.exit(__doc__)


if __name__ == "__main__":
    main()
