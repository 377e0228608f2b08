#!/usr/bin/env python3
# apt_sources.py CODENAME GO_SUITE: deb822 sources on stdout, derived from this machine's own
# apt configuration (cluster.sh's derive_apt_sources says why).
import glob, os, re, sys

codename, go_suite = sys.argv[1], sys.argv[2]
entries = []  # (uris, suites, components, signed_by)

def add(types, uris, suites, comps, signed_by):
    if "deb" in types and uris and suites:
        entries.append((uris, suites, comps, signed_by))

for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    with open(path) as f:
        text = f.read()
    for para in re.split(r"\n[ \t]*\n", text):
        fields, key = {}, None
        for line in para.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            if line[0] in " \t" and key:
                fields[key] += "\n" + line
                continue
            key, _, value = line.partition(":")
            key = key.strip().lower()
            fields[key] = value.strip()
        if not fields or fields.get("enabled", "yes").strip().lower() == "no":
            continue
        add(fields.get("types", "").split(), fields.get("uris", "").split(),
            fields.get("suites", "").split(), fields.get("components", "").split(),
            fields.get("signed-by"))

for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
    if not os.path.exists(path):
        continue
    with open(path) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            signed_by = None
            m = re.match(r"(\S+)\s+\[([^\]]*)\]\s*(.*)", line)
            if m:
                typ, opts, rest = m.groups()
                for opt in opts.split():
                    k, _, v = opt.partition("=")
                    if k.lower() == "signed-by":
                        signed_by = v
            else:
                typ, _, rest = line.partition(" ")
            words = rest.split()
            if len(words) >= 2:
                add([typ], [words[0]], [words[1]], words[2:], signed_by)

if not entries:
    sys.exit("no 'deb' entries in /etc/apt/sources.list or /etc/apt/sources.list.d")

def paragraph(types, uris, suites, comps, signed_by):
    lines = ["Types: " + types, "URIs: " + " ".join(uris), "Suites: " + " ".join(suites),
             "Components: " + " ".join(comps or ["main"])]
    if signed_by:
        lines.append("Signed-By: " + signed_by)
    return "\n".join(lines) + "\n"

out = [paragraph("deb-src", *e) for e in entries]
archives = [e for e in entries if codename in e[1]]
if not archives:
    sys.exit("no apt entry serves suite %r, so there is no Debian archive to take %s from"
             % (codename, go_suite))
for uris, _, _, signed_by in archives:
    out.append(paragraph("deb", uris, [go_suite], ["main"], signed_by))
print("\n".join(out), end="")
