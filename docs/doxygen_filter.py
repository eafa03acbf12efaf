#!/usr/bin/env python3
"""Doxygen's filter for include/nabla/*.h (docs/Doxyfile.in, FILTER_PATTERNS;
`ninja -C build docs`): prints the header with its
plain comments turned into documentation, keeping every line where it is
(so warnings point at the header's own lines):

- the header's first comment describes the file (@file);
- a comment on the line(s) right above a declaration documents it
  (`/* ` -> `/** `); one above several declarations in a row (no blank line
  between) documents each of them (a member group, DISTRIBUTE_GROUP_DOC);
- a comment after a declaration or member on its line (`int n; /* ... */`)
  documents that one (`/**< `);
- section rules (`/* ---- layers ---- */`) and comments inside function
  bodies and macros stay plain;
- lines indented past the comment's text (examples, tables) are code
  blocks;
- `<word>`, `\\` and `@word` in a comment's prose are written as text, not
  read as HTML tags or Doxygen commands.

The headers stay as they are: documenting a declaration is writing the
plain comment above it, as STYLE asks.
"""
import re
import sys

RULE = re.compile(r"/\*\s*-{3}")
INDENTED = re.compile(r"\s*\*   +\S")
TAG = re.compile(r"<(/?[A-Za-z_][\w.-]*)>")


def escape(text):
    """Comment text as Doxygen shows it literally (code lines stay as they
    are: Doxygen reads nothing in a code block)."""
    if INDENTED.match(text):
        return text
    parts = text.split('"')
    for k in range(0, len(parts), 2):  # Doxygen reads "quoted text" as it is
        t = parts[k].replace("\\", "\\\\")
        t = re.sub(r"@(?=\w)", r"\\@", t)
        parts[k] = TAG.sub(lambda m: "&lt;" + m.group(1) + "&gt;", t)
    return '"'.join(parts)


def examples(body):
    """Lines of a comment indented past its text (` *   nb_sum(x)   every
    axis`: examples, tables) become code blocks, opened at the end of the
    line above and closed on their last line."""
    k = 1
    while k < len(body):
        if not INDENTED.match(body[k]):
            k += 1
            continue
        j = k
        while j + 1 < len(body) and INDENTED.match(body[j + 1]):
            j += 1
        body[k - 1] += " @code"
        e = body[j].rfind("*/")
        body[j] = body[j] + " @endcode" if e < 0 else \
            body[j][:e].rstrip() + " @endcode " + body[j][e:]
        k = j + 1
    return body


def comment_end(lines, i, col):
    """Index of the line holding the `*/` that closes the comment opened at
    lines[i][col:]."""
    j = i
    pos = lines[i].find("*/", col + 2)
    while pos < 0:
        j += 1
        pos = lines[j].find("*/")
    return j


def is_code(line):
    s = line.strip()
    return bool(s) and not s.startswith("/*") and not s.startswith("//")


def declarations(lines, k):
    """The declarations that follow a leading comment at line k: (count,
    last line index, whether a brace block opens among them, whether the
    last is a macro)."""
    count, last, braces, pending, macro = 0, k - 1, False, False, False
    while k < len(lines) and is_code(lines[k]):
        s = lines[k].strip()
        if s.startswith("}"):
            break  # the end of the struct whose members these are
        if s.startswith("#") and not s.startswith("#define"):
            if s.startswith(("#if", "#else", "#elif", "#endif")) and pending:
                last = k  # an attribute between a prototype and its ';'
                k += 1
                continue
            break
        code = re.sub(r"/\*.*?\*/", "", s)
        if count and "/*" in s:
            break  # a declaration with its own comment: not in the group
        macro = s.startswith("#define")
        if not macro and code.endswith("{"):
            braces = True  # a struct or enum: its members have their own
        if macro:
            count += 1
            while lines[k].rstrip().endswith("\\"):
                k += 1
        else:
            pending = not code.endswith(";")
            if not pending:
                count += 1
        last = k
        k += 1
    return count, last, braces, macro


def main(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = list(lines)
    opens, closes = {}, {}  # group marks, added once the comments are done
    in_body = False   # inside a function body: `{` ... `}` at column 0
    in_macro = False  # on a continuation line of a #define
    i = 0
    while i < len(lines):
        line = lines[i]
        if in_macro:
            in_macro = line.rstrip().endswith("\\")
            i += 1
            continue
        if line.startswith("{"):
            in_body = True
        if in_body:
            if line.startswith("}"):
                in_body = False
            i += 1
            continue
        stripped = line.lstrip()
        col = line.find("/*")
        if stripped.startswith("#define") and line.rstrip().endswith("\\"):
            in_macro = True
        if col < 0 or line[col:].startswith("/**"):
            i += 1
            continue
        end = comment_end(lines, i, col)
        leading = stripped.startswith("/*")
        body = [line[:col] + escape(line[col:])] + [escape(l) for l in lines[i + 1:end + 1]]
        if leading and i == 0:
            # The file's own comment, less its "nabla: ": `@file` after its
            # text keeps the first sentence as the brief (a word after @file
            # would be read as the file's name).
            body[0] = re.sub(r"/\*( nabla: )?", "/** ", body[0], count=1)
            k = body[-1].rfind("*/")
            body[-1] = body[-1][:k] + " @file " + body[-1][k:]
            out[i:end + 1] = body
        elif leading and not RULE.match(stripped):
            # Doc when a declaration (or another comment, merged) follows.
            nxt = lines[end + 1] if end + 1 < len(lines) else ""
            if is_code(nxt) or nxt.lstrip().startswith("/*"):
                body[0] = body[0].replace("/*", "/**", 1)
                body = examples(body)
                if is_code(nxt):
                    n, last, braces, macro = declarations(lines, end + 1)
                    nxt = lines[last + 1] if last + 1 < len(lines) else "#"
                    if n > 1 and not braces and not (macro and is_code(nxt)):
                        opens[i] = opens.get(i, "") + "/**@{*/ "
                        if macro:  # after the macro, not in it
                            opens[last + 1] = opens.get(last + 1, "") + "/**@}*/ "
                        else:
                            closes[last] = " /**@}*/"
                out[i:end + 1] = body
        elif not leading:
            before = line[:col].rstrip()
            if before and not before.endswith("{"):
                body[0] = body[0][:col] + "/**<" + body[0][col + 2:]
                out[i:end + 1] = body
        i = end + 1
    for k, mark in opens.items():
        out[k] = mark + out[k]
    for k, mark in closes.items():
        out[k] = out[k] + mark
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1])
