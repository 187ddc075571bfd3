#!/usr/bin/env python3
"""prom-parse.py < EXPOSITION > JSON — checks Prometheus text exposition
format 0.0.4 strictly and prints {metric: {label value or "": number}}.

Checked: every line is a HELP, a TYPE or a sample; a family's HELP and TYPE
come once, before its samples, and its samples are contiguous; names and
label names are valid; a label value uses only the escapes \\\\, \\" and \\n
and is UTF-8; values are numbers; no sample is given twice; the text ends
with a newline.  Samples may have no label or one, `volume`.
"""
import json
import re
import sys

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}


def fail(lineno, msg, line):
    sys.exit("line %d: %s: %r" % (lineno, msg, line))


def parse_labels(s, lineno, line):
    """s starts after '{'; returns ({name: value}, rest after '}')."""
    labels, i = {}, 0
    while True:
        if s[i] == "}":
            return labels, s[i + 1:]
        m = LABEL.match(s, i)
        if not m or s[m.end():m.end() + 2] != '="':
            fail(lineno, "bad label", line)
        name, i = m.group(0), m.end() + 2
        value = []
        while True:
            if i >= len(s):
                fail(lineno, "unterminated label value", line)
            c = s[i]
            if c == "\\":
                e = s[i + 1:i + 2]
                if e not in ("\\", '"', "n"):
                    fail(lineno, "bad escape \\%s" % e, line)
                value.append("\n" if e == "n" else e)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                fail(lineno, "raw newline in a label value", line)
            else:
                value.append(c)
                i += 1
        if name in labels:
            fail(lineno, "label given twice", line)
        labels[name] = "".join(value)
        if s[i] == ",":
            i += 1
        elif s[i] != "}":
            fail(lineno, "expected , or }", line)


def main():
    raw = sys.stdin.buffer.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        sys.exit("not UTF-8: %s" % e)
    if not text.endswith("\n"):
        sys.exit("does not end with a newline")
    helps, types, out, done, current = {}, {}, {}, set(), None
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            kind, rest = line[2:6], line[7:]
            name, _, arg = rest.partition(" ")
            if not NAME.fullmatch(name) or not arg:
                fail(lineno, "bad " + kind, line)
            seen = helps if kind == "HELP" else types
            if name in seen or name in done or name in out:
                fail(lineno, kind + " again or after samples", line)
            if kind == "TYPE" and arg not in TYPES:
                fail(lineno, "unknown type", line)
            if kind == "TYPE" and arg == "counter" and not name.endswith("_total"):
                fail(lineno, "a counter's name ends in _total", line)
            seen[name] = arg
            continue
        if line.startswith("#") or not line:
            fail(lineno, "unexpected line", line)
        m = NAME.match(line)
        if not m:
            fail(lineno, "bad metric name", line)
        name, rest = m.group(0), line[m.end():]
        labels = {}
        if rest.startswith("{"):
            labels, rest = parse_labels(rest[1:], lineno, line)
        if not rest.startswith(" "):
            fail(lineno, "expected a space before the value", line)
        try:
            value = float(rest[1:])
        except ValueError:
            fail(lineno, "bad value", line)
        if name not in helps or name not in types:
            fail(lineno, "sample without HELP and TYPE", line)
        if current != name:
            if name in done:
                fail(lineno, "samples of a family not together", line)
            if current:
                done.add(current)
            current = name
        if set(labels) - {"volume"}:
            fail(lineno, "unexpected label", line)
        key = labels.get("volume", "")
        if key in out.setdefault(name, {}):
            fail(lineno, "sample given twice", line)
        out[name][key] = int(value) if value.is_integer() else value
    json.dump(out, sys.stdout)


main()
