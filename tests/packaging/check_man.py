#!/usr/bin/env python3
"""Every subcommand and every option that `--help` shows is in the man pages.

  check_man.py TCPTRAIL MAN_DIR

Reads the command line from the binary itself (`tcptrail _cli json`, which
walks the CLI11 definition), checks that it matches what `--help` prints for
the program and each subcommand, then that man/tcptrail.8.scd names every
subcommand's page and the program's options, and that each
man/tcptrail-<subcommand>.8.scd exists and names every option of that
subcommand (those it shares with the program, --help and --version, may be
in tcptrail(8) instead). A man page for a subcommand that no longer exists fails too.
Exits 1 with one line per problem.
"""
import json
import os
import re
import subprocess
import sys


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        sys.exit(f"check_man: {' '.join(args)} exited {p.returncode}: {p.stderr}")
    return p.stdout


def help_sections(text):
    """Option names and subcommand names in a CLI11 --help text."""
    options, subcommands = set(), []
    section = None
    for line in text.splitlines():
        if re.match(r"^[A-Za-z][A-Za-z ]*:\s*$", line):
            section = line.strip().rstrip(":").upper()
            continue
        stripped = line.strip()
        if not stripped:
            continue
        first = stripped.split()[0]
        if section == "OPTIONS" and first.startswith("-"):
            options.update(n for n in first.split(",") if n.startswith("-"))
        elif section == "SUBCOMMANDS" and line.startswith("  ") and not line.startswith("   "):
            subcommands.append(first)
    return options, subcommands


def mentions(text, name):
    return re.search(r"(?<![\w-])" + re.escape(name) + r"(?![\w-])", text) is not None


def main():
    binary, man_dir = sys.argv[1], sys.argv[2]
    spec = json.loads(run([binary, "_cli", "json"]))
    problems = []
    program = spec["program"]

    def names(options):
        return {n for o in options for n in o["names"]}

    # The spec is what --help shows, for the program and each subcommand.
    top_help, top_subs = help_sections(run([binary, "--help"]))
    spec_subs = [c["name"] for c in spec["commands"]]
    if top_subs != spec_subs:
        problems.append(f"--help lists subcommands {top_subs}, the CLI definition {spec_subs}")
    if top_help != names(spec["options"]):
        problems.append(f"--help shows {sorted(top_help)}, the CLI definition {sorted(names(spec['options']))}")
    for c in spec["commands"]:
        shown, _ = help_sections(run([binary, c["name"], "--help"]))
        if shown != names(c["options"]):
            problems.append(f"{c['name']} --help shows {sorted(shown)}, "
                            f"the CLI definition {sorted(names(c['options']))}")

    def page(name):
        path = os.path.join(man_dir, name + ".8.scd")
        if not os.path.exists(path):
            problems.append(f"no man page {path}")
            return None
        with open(path, encoding="utf-8") as f:
            return f.read()

    main_page = page(program)
    if main_page is not None:
        for n in sorted(names(spec["options"])):
            if not mentions(main_page, n):
                problems.append(f"{program}.8.scd lacks option {n}")
        for s in spec_subs:
            if not re.search(r"\*?" + re.escape(f"{program}-{s}") + r"\*?\(8\)", main_page):
                problems.append(f"{program}.8.scd does not name {program}-{s}(8)")
            if not mentions(main_page, s):
                problems.append(f"{program}.8.scd does not describe subcommand {s}")
    for c in spec["commands"]:
        text = page(f"{program}-{c['name']}")
        if text is None:
            continue
        for n in sorted(names(c["options"])):
            # The program's own options (--help, --version) that every
            # subcommand shares may be documented once, in tcptrail(8).
            shared = n in names(spec["options"]) and main_page is not None \
                and mentions(main_page, n)
            if not mentions(text, n) and not shared:
                problems.append(f"{program}-{c['name']}.8.scd lacks option {n}")
    # No page for a subcommand that is gone.
    for f in sorted(os.listdir(man_dir)):
        m = re.fullmatch(re.escape(program) + r"-(.+)\.8\.scd", f)
        if m and m.group(1) not in spec_subs:
            problems.append(f"{f} documents '{m.group(1)}', which is not a subcommand")

    for p in problems:
        print(f"check_man: {p}")
    checked = len(spec_subs) + 1
    print(f"check_man: {checked} pages, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
