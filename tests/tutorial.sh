#!/usr/bin/env bash
# Runs docs/tutorial.md as a reader would: in a scratch home directory, a
# clone of this checkout's HEAD at ~/nabla, then every ```sh block of the
# page in order in one shell (set -e), each C file the page shows (the
# ```c block after a `<!-- file: NAME -->` line) written where the shell is
# when the page shows it. The apt-get line is not run (CI's setup installs
# the packages): instead each package it names must be in .ci/setup's list.
#   tests/tutorial.sh [checkout]       exit status 0 when every step worked;
# a failing run prints the end of what the steps printed.
set -euo pipefail
src=$(cd "${1:-$(dirname "$0")/..}" && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
git clone -q "$src" "$home/nabla"
/usr/bin/python3 - "$src/docs/tutorial.md" "$src/.ci/setup" >"$home/tutorial-script.sh" <<'PY'
import re, sys
page, setup = open(sys.argv[1]).read().split("\n"), open(sys.argv[2]).read()
pkgs = set(re.search(r"pkgs=\((.*?)\)", setup, re.S).group(1).split())
out, block, kind, name = ["set -e"], None, None, None
for line in page:
    m = re.match(r"<!-- file: (\S+) -->", line)
    if m:
        name = m.group(1)
    elif block is None and line.startswith("```"):
        kind, block = line[3:].strip(), []
    elif block is not None and line.startswith("```"):
        if kind == "sh":
            for cmd in block:
                if cmd.split()[:1] == ["apt-get"]:
                    missing = [p for p in cmd.split()[3:] if not p.startswith("-") and p not in pkgs]
                    if missing:
                        sys.exit("tutorial: packages not in .ci/setup: " + " ".join(missing))
                else:
                    out.append(cmd)
        elif kind == "c" and name:
            out += [f"cat > {name} <<'NABLA_TUTORIAL_EOF'"] + block + ["NABLA_TUTORIAL_EOF"]
            name = None
        block = None
    elif block is not None:
        block.append(line)
print("\n".join(out))
PY
cd "$home"
if ! HOME=$home PKG_CONFIG_PATH= bash -x "$home/tutorial-script.sh" >"$home/log" 2>&1; then
    tail -40 "$home/log"
    echo "tutorial.sh: a step of docs/tutorial.md failed (its last lines above)"
    exit 1
fi
