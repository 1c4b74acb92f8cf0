"""The conditions kvmini-bench records with every result: the machine, its
KVM, the memory backing, the VMM revisions, the load."""
import os
import platform
import re
import subprocess
import time


def _read(path, default="?"):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _cpuinfo():
    model, flags = "?", set()
    for line in _read("/proc/cpuinfo", "").splitlines():
        k, _, v = line.partition(":")
        k = k.strip()
        if k == "model name" and model == "?":
            model = v.strip()
        elif k == "flags" and not flags:
            flags = set(v.split())
    return model, flags


def kvm_flavour(flags):
    """What /dev/kvm is here: VMX, SVM or the paravirtual PVM, and whether
    this host is itself a VM (the CPU's hypervisor flag)."""
    nested = "hypervisor" in flags
    if os.path.isdir("/sys/module/kvm_pvm"):
        kind = "paravirtual (kvm_pvm: shadow paging, guest ring 0 emulated)"
    elif os.path.isdir("/sys/module/kvm_intel") or "vmx" in flags:
        ept = _read("/sys/module/kvm_intel/parameters/ept", "?")
        kind = f"VMX (kvm_intel, ept={ept})"
    elif os.path.isdir("/sys/module/kvm_amd") or "svm" in flags:
        npt = _read("/sys/module/kvm_amd/parameters/npt", "?")
        kind = f"SVM (kvm_amd, npt={npt})"
    else:
        kind = "unknown" if os.path.exists("/dev/kvm") else "none (/dev/kvm missing)"
    return kind + ("; nested: this host is itself a VM" if nested else "; bare metal")


def _thp():
    m = re.search(r"\[(\w+)\]", _read("/sys/kernel/mm/transparent_hugepage/enabled", ""))
    return m.group(1) if m else "?"


def _first_line(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout or p.stderr).strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def kvmini_revision(kvmini, srcdir):
    if srcdir and os.path.isdir(os.path.join(srcdir, ".git")):
        rev = _first_line(["git", "-C", srcdir, "describe", "--always", "--dirty"])
        if rev != "?":
            return rev
    return _first_line([kvmini, "--version"])


def collect(a, srcdir=None):
    model, flags = _cpuinfo()
    hp = re.search(r"HugePages_Total:\s+(\d+)", _read("/proc/meminfo", ""))
    kvm = kvm_flavour(flags)
    c = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "host_kernel": platform.release(),
        "kvm": kvm,
        "thp": _thp(),
        "hugetlb_pages": int(hp.group(1)) if hp else 0,
        "guest_ram_backing": "kvmini: transparent huge pages (MADV_HUGEPAGE) unless a row says "
                             "-nothp (thp=off); QEMU: its default (MADV_HUGEPAGE)",
        "kvmini_revision": kvmini_revision(a.kvmini, srcdir),
        "guest": a.guest,
        "qemu_version": _first_line([a.qemu, "--version"]) if a.compare_qemu else None,
        "repetitions": a.repeat,
        "quick": a.quick,
        "load_before": list(os.getloadavg()),
    }
    if "hypervisor" in flags and "kvm_pvm" in kvm:
        c["timing_note"] = ("a paravirtual KVM inside a VM: guest ring 3 runs natively, exits "
                            "and first page touches cost more than on VMX/SVM")
    return c
