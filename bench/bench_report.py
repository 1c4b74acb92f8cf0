"""kvmini-bench's numbers and files: per row and side the min/median/max of
the repetitions, the guest/host ratios of the medians, and the table,
results.json, results.csv and the chart of the ratios (gnuplot).

A ratio is always "performance relative to the host": 1.00 is native
speed, 0.70 is the "1 : 0.7" of the study note. For a row where more is
better (MB/s, IOPS) it is guest / host; where less is better (ns per load,
µs per exit) it is host / guest. So every ratio reads the same way.
"""
import csv
import json
import math
import os
import shutil
import statistics
import subprocess

SIDES = ("host", "kvmini", "qemu")


def summary(values):
    """min / median / max of the repetitions (None for no values)."""
    vals = sorted(v for v in values if v is not None and not math.isnan(v))
    if not vals:
        return None
    return {"n": len(vals), "min": vals[0], "median": statistics.median(vals), "max": vals[-1]}


def ratio(guest, host, better):
    """Guest performance relative to host; None when either is missing or 0."""
    if guest is None or host is None or guest <= 0 or host <= 0:
        return None
    return guest / host if better == "higher" else host / guest


class Results:
    """Rows in the order they were first added; per row its unit, which way
    is better, and per side the list of repetitions' values."""

    def __init__(self, conditions=None):
        self.conditions = dict(conditions or {})
        self.rows = {}

    def add(self, row, side, value, unit, better, workload=None, note=None):
        r = self.rows.setdefault(row, {"unit": unit, "better": better, "workload": workload or row,
                                       "values": {}, "notes": []})
        r["values"].setdefault(side, []).append(value)
        if note and note not in r["notes"]:
            r["notes"].append(note)

    def note(self, row, text):
        if row in self.rows and text not in self.rows[row]["notes"]:
            self.rows[row]["notes"].append(text)

    def table(self):
        """[{row, unit, better, workload, sides: {side: summary}, ratios: {...}, notes}]"""
        out = []
        for name, r in self.rows.items():
            sides = {s: summary(v) for s, v in r["values"].items()}
            med = {s: (x["median"] if x else None) for s, x in sides.items()}
            ratios = {}
            for s in sides:
                if s != "host":
                    ratios[f"{s}/host"] = ratio(med.get(s), med.get("host"), r["better"])
            if "kvmini" in med and "qemu" in med:
                ratios["kvmini/qemu"] = ratio(med["kvmini"], med["qemu"], r["better"])
            out.append({"row": name, "unit": r["unit"], "better": r["better"],
                        "workload": r["workload"], "sides": sides, "ratios": ratios,
                        "values": r["values"], "notes": r["notes"]})
        return out


def fmt_num(v):
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}"


def text_table(res, sides=SIDES):
    rows = res.table()
    sides = [s for s in sides if any(s in r["sides"] for r in rows)]
    ratio_cols = [f"{s}/host" for s in sides if s != "host"]
    if "kvmini" in sides and "qemu" in sides:
        ratio_cols.append("kvmini/qemu")
    head = f"{'row':<24} {'unit':<8}" + "".join(f" {s + ' min/median/max':>32}" for s in sides) + \
        "".join(f" {c:>11}" for c in ratio_cols)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = []
        for s in sides:
            x = r["sides"].get(s)
            cells.append(f" {'-':>32}" if not x else
                         f" {fmt_num(x['min']) + ' / ' + fmt_num(x['median']) + ' / ' + fmt_num(x['max']):>32}")
        rat = "".join(f" {fmt_ratio(r['ratios'].get(c)):>11}" for c in ratio_cols)
        lines.append(f"{r['row']:<24} {r['unit']:<8}" + "".join(cells) + rat)
    return "\n".join(lines)


def write_json(res, path):
    doc = {"conditions": res.conditions, "ratio_meaning":
           "performance relative to the host (1.0 = native); kvmini/qemu: kvmini relative to QEMU",
           "rows": res.table()}
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")


def write_csv(res, path):
    """One line per row, side and repetition (the raw data), plus the summary
    columns repeated on each, so a spreadsheet can start from either."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "unit", "better", "side", "repetition", "value", "min", "median", "max",
                    "ratio_vs_host"])
        for r in res.table():
            for side, vals in r["values"].items():
                s = r["sides"].get(side) or {}
                rv = r["ratios"].get(f"{side}/host") if side != "host" else 1.0 if s else None
                for i, v in enumerate(vals, 1):
                    w.writerow([r["row"], r["unit"], r["better"], side, i, repr_num(v),
                                repr_num(s.get("min")), repr_num(s.get("median")),
                                repr_num(s.get("max")), repr_num(rv)])


def repr_num(v):
    return "" if v is None else repr(float(v))


def read_csv(path):
    """Parses write_csv's file back: {(row, side): [values]}."""
    out = {}
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            out.setdefault((rec["row"], rec["side"]), []).append(float(rec["value"]))
    return out


def write_chart(res, path, gnuplot=None):
    """A bar chart of the ratios against the host (1.0 = native), one group
    per row that has a host figure: SVG, or PNG when path ends in .png.
    Returns None or why not."""
    gnuplot = gnuplot or shutil.which("gnuplot")
    if not gnuplot:
        return "gnuplot is not installed (apt-get install gnuplot-nox)"
    rows = [r for r in res.table() if any(v is not None for k, v in r["ratios"].items()
                                           if k.endswith("/host"))]
    if not rows:
        return "no row has a host figure to compare with"
    cols = [c for c in ("kvmini/host", "qemu/host") if any(r["ratios"].get(c) is not None for r in rows)]
    data = path + ".dat"
    with open(data, "w") as f:
        f.write("row " + " ".join(cols) + "\n")
        for r in rows:
            f.write(r["row"] + " " + " ".join(
                f"{r['ratios'][c]:.4f}" if r["ratios"].get(c) is not None else "NaN" for c in cols) + "\n")
    top = max([1.2] + [r["ratios"][c] * 1.1 for r in rows for c in cols if r["ratios"].get(c)])
    width = max(640, 60 * len(rows) + 200)
    term = (f"pngcairo size {width},520 font 'sans,9'" if path.endswith(".png") else
            f"svg size {width},520 dynamic font 'sans,11'")
    script = f"""
set terminal {term}
set output '{path}'
set title 'kvmini-bench: performance relative to the host (1.0 = native)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set yrange [0:{min(top, 10.0):.2f}]
set ytics nomirror
set grid ytics
set xtics rotate by -45 left nomirror
set bmargin 12
set key top right
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lc rgb '#444444'
plot for [i=2:{1 + len(cols)}] '{data}' using i:xtic(1) title columnheader(i)
"""
    p = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
    os.unlink(data)
    if p.returncode or not os.path.exists(path):
        return f"gnuplot failed: {p.stderr.strip()[-300:]}"
    return None
