#!/usr/bin/env python3
"""Unit tests of kvmini-bench's numbers and files (suite unit): the
statistics, the ratio maths, the console-mark parser, and the writers
(JSON and CSV parse back to the same numbers; the chart file is made)."""
import json
import math
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_report  # noqa: E402
import kvmini_bench  # noqa: E402


class Stats(unittest.TestCase):
    def test_summary(self):
        s = bench_report.summary([5.0, 1.0, 3.0, 2.0])
        self.assertEqual((s["n"], s["min"], s["median"], s["max"]), (4, 1.0, 2.5, 5.0))
        self.assertEqual(bench_report.summary([7.0])["median"], 7.0)
        self.assertIsNone(bench_report.summary([]))
        self.assertEqual(bench_report.summary([None, 2.0, float("nan")])["n"], 1)

    def test_ratio_directions(self):
        # Higher is better: guest / host. Lower is better: host / guest.
        self.assertAlmostEqual(bench_report.ratio(70.0, 100.0, "higher"), 0.70)
        self.assertAlmostEqual(bench_report.ratio(200.0, 100.0, "lower"), 0.50)
        self.assertAlmostEqual(bench_report.ratio(50.0, 100.0, "lower"), 2.0)
        for bad in ((None, 1.0), (1.0, None), (0.0, 1.0), (1.0, 0.0)):
            self.assertIsNone(bench_report.ratio(*bad, "higher"))

    def test_table_ratios_of_medians(self):
        r = bench_report.Results()
        for side, vals in (("host", [10, 30, 20]), ("kvmini", [9, 18, 15]), ("qemu", [12, 12, 12])):
            for v in vals:
                r.add("x", side, float(v), "MB/s", "higher")
        for side, vals in (("host", [100, 100]), ("kvmini", [400, 200])):
            for v in vals:
                r.add("lat", side, float(v), "ns", "lower")
        t = {row["row"]: row for row in r.table()}
        self.assertAlmostEqual(t["x"]["ratios"]["kvmini/host"], 15 / 20)
        self.assertAlmostEqual(t["x"]["ratios"]["qemu/host"], 12 / 20)
        self.assertAlmostEqual(t["x"]["ratios"]["kvmini/qemu"], 15 / 12)
        self.assertAlmostEqual(t["lat"]["ratios"]["kvmini/host"], 100 / 300)
        self.assertNotIn("qemu/host", t["lat"]["ratios"])
        text = bench_report.text_table(r)
        self.assertIn("0.75", text)
        self.assertIn("0.33", text)


class Marks(unittest.TestCase):
    def test_parse_and_null_subtraction(self):
        lines = [("@b null", 1.0), ("@e", 1.001), ("@b cpu-int", 2.0), ("@e", 3.001),
                 ("@r cpu-int units=1000 sum=0x10", 3.002), ("microguest: PASS", 3.1),
                 ("@r exit-kick skipped=no-virtio-blk-disk", 3.2)]
        p = kvmini_bench.parse_marks(lines)
        self.assertAlmostEqual(p["cpu-int"]["wall"], 1.0)
        self.assertAlmostEqual(p["cpu-int"]["wall_raw"], 1.001)
        self.assertEqual(p["cpu-int"]["units"], 1000)
        self.assertEqual(p["cpu-int"]["sum"], 16)
        self.assertFalse(p["cpu-int"]["short"])
        self.assertEqual(p["exit-kick"]["skipped"], "no-virtio-blk-disk")
        rows = kvmini_bench.micro_rows("cpu-int", p)
        self.assertEqual(len(rows), 1)
        self.assertAlmostEqual(rows[0][1], 1000 / 1.0 / 1e6)

    def test_units_per_kind(self):
        p = {"mem-lat-4k": {"wall": 0.5, "units": 10**8, "sum": 1},
             "exit-pio": {"wall": 0.25, "units": 10**4}, "cpu-fp": {"wall": 2.0, "units": 4 * 10**9}}
        rows = {r[0]: r for r in kvmini_bench.micro_rows("x", p)}
        self.assertAlmostEqual(rows["mem-lat-4k"][1], 5.0)       # ns per load
        self.assertEqual(rows["mem-lat-4k"][3], "lower")
        self.assertAlmostEqual(rows["exit-pio"][1], 25000.0)      # ns per exit
        self.assertAlmostEqual(rows["cpu-fp"][1], 2000.0)         # MFLOP/s
        # The host's one system call stands for all three exit rows.
        host = {r[0]: r for r in kvmini_bench.micro_rows("exit", {"exit-syscall": {"wall": 0.5, "units": 10**6}})}
        self.assertEqual(sorted(host), ["exit-kick", "exit-mmio", "exit-pio"])
        self.assertAlmostEqual(host["exit-mmio"][1], 500.0)


class Files(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.r = bench_report.Results({"cpu_model": "test", "load_before": [0.1, 0.2, 0.3]})
        self.vals = {("a", "host"): [1.5, 2.25, 3.0], ("a", "kvmini"): [1.0, 1.125],
                     ("b", "kvmini"): [1e-3], ("b", "qemu"): [2e-3, 4e-3]}
        for (row, side), vs in self.vals.items():
            for v in vs:
                self.r.add(row, side, v, "u", "higher")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_json_round_trip(self):
        path = os.path.join(self.dir, "r.json")
        bench_report.write_json(self.r, path)
        doc = json.load(open(path))
        self.assertEqual(doc["conditions"]["cpu_model"], "test")
        rows = {x["row"]: x for x in doc["rows"]}
        for (row, side), vs in self.vals.items():
            self.assertEqual(rows[row]["values"][side], vs)
        self.assertEqual(rows["a"]["sides"]["host"]["median"], 2.25)
        self.assertAlmostEqual(rows["a"]["ratios"]["kvmini/host"], 1.0625 / 2.25)

    def test_csv_round_trip(self):
        path = os.path.join(self.dir, "r.csv")
        bench_report.write_csv(self.r, path)
        back = bench_report.read_csv(path)
        self.assertEqual(back, {k: v for k, v in self.vals.items()})

    def test_chart(self):
        if not shutil.which("gnuplot"):
            self.skipTest("gnuplot is not installed")
        path = os.path.join(self.dir, "ratios.svg")
        self.assertIsNone(bench_report.write_chart(self.r, path))
        svg = open(path).read()
        self.assertIn("<svg", svg)
        self.assertIn("kvmini/host", svg)
        self.assertFalse(os.path.exists(path + ".dat"))
        png = os.path.join(self.dir, "ratios.png")
        self.assertIsNone(bench_report.write_chart(self.r, png))
        with open(png, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_chart_needs_a_host_row(self):
        r = bench_report.Results()
        r.add("startup", "kvmini", 1.0, "ms", "lower")
        self.assertIsNotNone(bench_report.write_chart(r, os.path.join(self.dir, "x.svg")))


if __name__ == "__main__":
    res = unittest.main(exit=False, verbosity=2).result
    if not res.wasSuccessful():
        sys.exit(1)
    # A case that could not run makes the whole test a skip (77), not a pass.
    sys.exit(77 if res.skipped else 0)
