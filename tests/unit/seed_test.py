#!/usr/bin/env python3
"""`kvmini seed`: the image read back with an independent reader, isoinfo
(genisoimage), and every refusal.

seed_test.py KVMINI DATADIR

Checked: the volume label (cidata, lower case, in the ISO 9660 and the Joliet
descriptors), Rock Ridge and Joliet present; meta-data (a fresh instance-id per
seed, local-hostname, the keys), user-data (made with and without --user, or
the given file verbatim), network-config when given; the refusals exit 2
with one line (a private key, junk, a key whose data names another type, bad
base64, ssh-dss, options before the key, control characters, a missing or
unknown option, bad host and user names, --user with --user-data, user-data
cloud-init would ignore, NUL bytes); a missing output directory exits 1 and
leaves nothing behind. Exits 77 (skipped) without isoinfo.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

kvmini, data = sys.argv[1], sys.argv[2]
if not shutil.which("isoinfo"):
    print("seed_test: SKIP: isoinfo (Debian: genisoimage) is not installed")
    sys.exit(77)
KEY = open(os.path.join(data, "seed-test-key.pub")).read().strip()
RSA = open(os.path.join(data, "seed-test-rsa.pub")).read().strip()
tmp = tempfile.mkdtemp(prefix="kvmini-seed-")
failures = 0


def fail(why):
    global failures
    print(f"FAIL: {why}")
    failures += 1


def put(name, text, mode="w"):
    path = os.path.join(tmp, name)
    with open(path, mode) as f:
        f.write(text)
    return path


def seed(*args):
    return subprocess.run([kvmini, "seed", *args], capture_output=True, text=True, timeout=30)


def iso(img, *args):
    r = subprocess.run(["isoinfo", "-i", img, *args], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        fail(f"isoinfo {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def extract(img, name, joliet=False):
    return iso(img, "-J" if joliet else "-R", "-x", "/" + name)


keyfile = put("key.pub", KEY + "\n")
img = os.path.join(tmp, "seed.img")

# 1. The default user, one key.
r = seed("--hostname", "vm1", "--ssh-key", keyfile, "-o", img)
if r.returncode != 0 or r.stderr:
    fail(f"seed: status {r.returncode}, stderr {r.stderr!r}")
desc = iso(img, "-d")
if not re.search(r"^Volume id: cidata\s*$", desc, re.M):
    fail(f"volume id: {desc!r}")
if "Rock Ridge signatures" not in desc or "Joliet" not in desc:
    fail(f"no Rock Ridge or Joliet: {desc!r}")
with open(img, "rb") as f:
    f.seek(17 * 2048)           # the Joliet volume descriptor follows the primary one
    svd = f.read(2048)
if svd[0] != 2 or svd[40:52].decode("utf-16-be") != "cidata":
    fail(f"Joliet volume id: {svd[40:72]!r}")
names = sorted(re.findall(r"^-\S+ .*\]\s+(\S+)\s*$", iso(img, "-R", "-l"), re.M))
if names != ["meta-data", "user-data"]:
    fail(f"files: {names}")
meta = extract(img, "meta-data")
iid = re.search(r"^instance-id: (iid-[0-9a-f]{32})$", meta, re.M)
if not iid or "local-hostname: vm1\n" not in meta or f'  - "{KEY}"' not in meta:
    fail(f"meta-data: {meta!r}")
user = extract(img, "user-data")
if not user.startswith("#cloud-config\n") or "hostname: vm1\n" not in user or \
        f'ssh_authorized_keys:\n  - "{KEY}"' not in user or "users:" in user:
    fail(f"user-data (default user): {user!r}")
if extract(img, "user-data", joliet=True) != user:
    fail("the Joliet tree's user-data differs")
mode = os.stat(img).st_mode & 0o777
if mode != 0o644:
    fail(f"image mode {oct(mode)}")

# 2. A second seed: a new instance-id; --user; two keys (with comments and blank lines).
two = put("two.pub", f"# my keys\n\n{KEY}\r\n  {RSA}  \n")
r = seed("--hostname", "web-2.example.org", "--ssh-key", two, "--user", "debian",
         "--output", img)
if r.returncode != 0:
    fail(f"seed --user: {r.stderr!r}")
meta2 = extract(img, "meta-data")
iid2 = re.search(r"^instance-id: (iid-[0-9a-f]{32})$", meta2, re.M)
if not iid2 or (iid and iid2.group(1) == iid.group(1)):
    fail(f"instance-id not fresh: {iid and iid.group(1)} then {iid2 and iid2.group(1)}")
if meta2.count('  - "ssh-') != 2 or "local-hostname: web-2.example.org" not in meta2:
    fail(f"meta-data with two keys: {meta2!r}")
user = extract(img, "user-data")
if "users:\n  - name: debian\n" not in user or 'sudo: "ALL=(ALL) NOPASSWD:ALL"' not in user \
        or f'      - "{RSA}"' not in user or "lock_passwd: true" not in user:
    fail(f"user-data with --user: {user!r}")

# 3. --user-data and --network-config files, verbatim.
ud = put("ud.yaml", "#cloud-config\npackages: [htop]\nruncmd:\n  - [touch, /tmp/ok]\n")
nc = put("nc.yaml", "version: 2\nethernets:\n  eth0:\n    dhcp4: true\n")
r = seed("--hostname", "vm3", "--ssh-key", keyfile, "--user-data", ud,
         "--network-config", nc, "-o", img)
if r.returncode != 0:
    fail(f"seed --user-data --network-config: {r.stderr!r}")
if extract(img, "user-data") != open(ud).read():
    fail("user-data not verbatim")
if extract(img, "network-config") != open(nc).read():
    fail("network-config not verbatim")
if f'  - "{KEY}"' not in extract(img, "meta-data"):
    fail("with --user-data the key is not in meta-data")

# 4. Refusals: exit 2, one line, and the last good image untouched.
before = open(img, "rb").read()
b64 = KEY.split()[1]
bad_keys = {
    "private": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n"
               "-----END OPENSSH PRIVATE KEY-----\n",
    "junk": "hello world\n",
    "empty": "\n# only a comment\n",
    "type-mismatch": f"ssh-rsa {b64} x\n",
    "bad-base64": "ssh-ed25519 AAAA$$$$AAAA x\n",
    "bad-padding": f"ssh-ed25519 {b64}= x\n",
    "stray-bits": f"ssh-ed25519 {b64[:-2]}B= x\n",
    "cut": f"ssh-ed25519 {b64[:40]} x\n",
    "trailing-bytes": f"ssh-ed25519 {b64}AAAA x\n",
    "dsa": f"ssh-dss {b64} x\n",
    "options": f'from="10.0.0.1" {KEY}\n',
    "control-char": f"{KEY} a\x1bb\n",
    "second-line-bad": f"{KEY}\nssh-ed25519\n",
}
cases = [(f"--ssh-key {k}", ["--hostname", "vm", "--ssh-key", put(k, v), "-o", img], "--ssh-key")
         for k, v in bad_keys.items()]
put("nul.pub", KEY.encode() + b"\0\n", "wb")
cases += [
    ("NUL in the key file", ["--hostname", "vm", "--ssh-key", os.path.join(tmp, "nul.pub"),
                             "-o", img], "NUL"),
    ("missing key file", ["--hostname", "vm", "--ssh-key", os.path.join(tmp, "none"), "-o", img],
     "--ssh-key"),
    ("key file is a directory", ["--hostname", "vm", "--ssh-key", tmp, "-o", img], "--ssh-key"),
    ("no --hostname", ["--ssh-key", keyfile, "-o", img], "required"),
    ("no -o", ["--hostname", "vm", "--ssh-key", keyfile], "required"),
    ("unknown option", ["--hostname", "vm", "--ssh-key", keyfile, "-o", img, "--colour"],
     "unknown"),
    ("stray argument", ["--hostname", "vm", "--ssh-key", keyfile, "-o", img, "extra"],
     "unexpected"),
    ("hostname with _", ["--hostname", "my_vm", "--ssh-key", keyfile, "-o", img], "--hostname"),
    ("hostname -x", ["--hostname", "-x", "--ssh-key", keyfile, "-o", img], "--hostname"),
    ("hostname x-", ["--hostname", "x-", "--ssh-key", keyfile, "-o", img], "--hostname"),
    ("hostname a..b", ["--hostname", "a..b", "--ssh-key", keyfile, "-o", img], "--hostname"),
    ("hostname label 64", ["--hostname", "a" * 64, "--ssh-key", keyfile, "-o", img],
     "--hostname"),
    ("hostname with newline", ["--hostname", "vm\nx: 1", "--ssh-key", keyfile, "-o", img],
     "--hostname"),
    ("user Root", ["--hostname", "vm", "--ssh-key", keyfile, "--user", "Root", "-o", img],
     "--user"),
    ("user with :", ["--hostname", "vm", "--ssh-key", keyfile, "--user", "a:b", "-o", img],
     "--user"),
    ("--user and --user-data", ["--hostname", "vm", "--ssh-key", keyfile, "--user", "debian",
                                "--user-data", ud, "-o", img], "--user"),
    ("user-data without a header", ["--hostname", "vm", "--ssh-key", keyfile, "--user-data",
                                    put("plain.yaml", "packages: [htop]\n"), "-o", img],
     "ignore"),
]
for name, args, word in cases:
    r = seed(*args)
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    if r.returncode != 2 or len(lines) != 1 or word not in lines[0]:
        fail(f"{name}: status {r.returncode}, stderr {r.stderr!r} (want 2, one line with {word!r})")
if open(img, "rb").read() != before:
    fail("a refused seed changed the existing image")

# 5. An output directory that does not exist: exit 1, nothing made.
r = seed("--hostname", "vm", "--ssh-key", keyfile, "-o", os.path.join(tmp, "no", "seed.img"))
if r.returncode != 1 or "-o" not in r.stderr:
    fail(f"missing output directory: status {r.returncode}, {r.stderr!r}")
if any(n.startswith("seed.img.tmp") for n in os.listdir(tmp)):
    fail("a temporary file was left behind")
r = seed("--help")
if r.returncode != 0 or "--hostname" not in r.stdout:
    fail("seed --help")

shutil.rmtree(tmp)
if failures:
    print(f"seed_test: {failures} failure(s)")
    sys.exit(1)
print(f"seed_test: PASS ({len(cases)} refusals)")
