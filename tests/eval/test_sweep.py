"""RD sweeps: a tiny real sweep (hinerv + x265 on a carphone crop), resumability, tables, plots and the CLIs."""
import csv
import json
from pathlib import Path

import pytest

from codec.clips import make_clip
from eval import rd as rd_cli
from eval import sweep
from eval import uvg as uvg_cli
from eval.plots import PublishedCurve, panel_series, published_curves
from eval.results import STANDARD_KEYS, read_results

QPS = [22, 27, 32, 37]
FAST = dict(epochs=2, prune_epochs=1, qat_epochs=1)
# the same sweep through the CLI: all of its points must be found finished
CLI_ARGS = ["--presets", "xxs", "--params", "3000", "--epochs", "2", "-o", "prune_epochs=1", "-o", "qat_epochs=1",
            "--anchors", "x265", "--qps", ",".join(map(str, QPS)), "--no-progress"]


class Counting:
    """A picklable-enough runner (in-process) that counts the jobs it runs."""

    def __init__(self):
        self.labels = []

    def __call__(self, job):
        self.labels.append(job.label)
        return sweep.run_job(job)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "carphone.y4m"
    make_clip(path, frames=4, crop=(40, 32, 64, 48))
    return path


def _hinerv():
    # a preset and a parameter budget: on a 64x48 clip every preset is at the 1000-parameter floor
    return sweep.hinerv_points(["xxs"], [3000], **FAST)


@pytest.fixture(scope="module")
def swept(clip, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    runner = Counting()
    summary = sweep.run_sweep([sweep.clip_input(clip)], out, _hinerv(), {"x265": QPS}, progress=False,
                              runner=runner)
    return out, summary, runner


def test_sweep_writes_every_point_once(swept):
    out, summary, runner = swept
    assert summary.failed == {}
    assert sorted(runner.labels) == sorted(summary.computed)
    assert len(summary.computed) == 2 + len(QPS)
    for point in ("xxs", "p3000"):
        rec = json.loads((out / "points" / "carphone" / "hinerv" / f"{point}.json").read_text())
        assert rec["params"] > 0 and rec["macs_per_pixel"] > 0 and rec["decode_fps"] > 0
        assert rec["encoding_time"] > 0 and rec["bpp"] > 0
        assert (out / "points" / "carphone" / "hinerv" / f"{point}.bin").stat().st_size == rec["bytes"]
    for qp in QPS:
        rec = json.loads((out / "points" / "carphone" / "x265" / f"qp{qp}.json").read_text())
        assert rec["qp"] == qp and rec["config"]["settings"] == {"codec": "x265", "qp": qp}
        assert 25 < rec["psnr-yuv"] < 60


def test_results_are_in_compressai_layout(swept):
    out, _, _ = swept
    for folder in ("carphone", sweep.AVERAGE):
        for codec, n in (("hinerv", 2), ("x265", len(QPS))):
            path = out / "results" / folder / f"{codec}.json"
            raw = json.loads(path.read_text())
            assert set(raw) >= {"name", "description", "results"} and raw["name"] == codec
            res = read_results(path)
            assert len(res) == n
            for key in (*STANDARD_KEYS, "params", "macs_per_pixel", "decode_fps"):
                assert len(res.results[key]) == n, key
            assert res.results["bpp"] == sorted(res.results["bpp"])
            assert all(v is not None for v in res.results["psnr-yuv"] + res.results["encoding_time"])
    hinerv = read_results(out / "results" / "carphone" / "hinerv.json")
    assert all(p > 0 for p in hinerv.results["params"])


def test_bd_tables_have_rows_for_every_metric(swept):
    out, summary, _ = swept
    md = (out / "bd_rate.md").read_text()
    for metric in ("psnr-yuv", "psnr-y", "ms-ssim (dB)"):
        assert f"### anchor = x265, metric = {metric}" in md
    with open(out / "bd_rate.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    seen = {(r["metric"], r["anchor"], r["test"], r["sequence"]) for r in rows}
    for metric in ("psnr-yuv", "psnr-y", "ms-ssim (dB)"):
        for seq in ("carphone", "mean of per-sequence", "averaged curve"):
            assert (metric, "x265", "hinerv", seq) in seen
    assert "needs >= 4 points" in md  # two hinerv points: n/a, with the reason
    assert "psnr-rgb" not in {r["metric"] for r in rows}
    with open(out / "points.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2 + len(QPS)


def test_plots_are_pngs(swept):
    out, summary, _ = swept
    for name in ("carphone", sweep.AVERAGE):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(summary.outputs["plots"]) == 2


def test_second_run_does_no_work_and_a_lost_point_is_redone(swept, clip):
    out, _, _ = swept
    points = sorted((out / "points").rglob("*.json"))
    mtimes = [p.stat().st_mtime_ns for p in points]
    runner = Counting()
    summary = sweep.run_sweep([sweep.clip_input(clip)], out, _hinerv(), {"x265": QPS}, progress=False,
                              runner=runner)
    assert runner.labels == [] and summary.computed == [] and len(summary.skipped) == 2 + len(QPS)
    assert [p.stat().st_mtime_ns for p in points] == mtimes
    (out / "points" / "carphone" / "x265" / "qp27.json").unlink()
    summary = sweep.run_sweep([sweep.clip_input(clip)], out, _hinerv(), {"x265": QPS}, progress=False,
                              runner=runner)
    assert runner.labels == ["carphone/x265/qp27"] == summary.computed


def test_cli_with_the_same_settings_finds_everything_done(swept, clip, capsys):
    out, _, _ = swept
    assert rd_cli.main(["--clip", str(clip), "--out", str(out), *CLI_ARGS]) == 0
    assert "0 point(s) computed, 6 already done, 0 failed" in capsys.readouterr().out


def test_the_kernel_choice_does_not_make_other_settings(swept, clip):
    """Kernels change float rounding only: a point made under one choice is reused under another."""
    out, _, _ = swept
    hinerv = sweep.hinerv_points(["xxs"], [3000], **{**FAST, "kernels": "torch"})
    assert all(opts["kernels"] == "torch" for _, opts in hinerv)  # what the encodes would run with
    runner = Counting()
    summary = sweep.run_sweep([sweep.clip_input(clip)], out, hinerv, {}, progress=False, runner=runner)
    assert runner.labels == [] and len(summary.skipped) == 2


def test_other_settings_are_refused_not_mixed(swept, clip, capsys):
    out, _, _ = swept
    hinerv = sweep.hinerv_points(["xxs"], [3000], epochs=3, prune_epochs=1, qat_epochs=1)
    with pytest.raises(sweep.SweepError, match="epochs: 2 then, 3 now"):
        sweep.run_sweep([sweep.clip_input(clip)], out, hinerv, {"x265": QPS}, progress=False)
    args = ["--clip", str(clip), "--out", str(out), *CLI_ARGS, "--frames", "3"]
    assert rd_cli.main(args) == 2
    assert "other settings" in capsys.readouterr().err


def test_hinerv_points_resume_through_the_encoder(clip, tmp_path, monkeypatch):
    import codec.encoder

    calls = []

    def fake_encode(src, dst, options, **kwargs):
        calls.append((Path(dst).name, options.epochs, options.frames, kwargs))
        raise KeyboardInterrupt  # as if stopped mid-way

    monkeypatch.setattr(codec.encoder, "encode", fake_encode)
    jobs = sweep.plan([sweep.clip_input(clip, frames=3)], tmp_path, sweep.hinerv_points(["xs"], **FAST), {})
    with pytest.raises(KeyboardInterrupt):
        sweep.run_jobs(jobs, progress=False)
    assert [c[:3] for c in calls] == [("xs.bin", 2, 3)]
    assert calls[0][3]["resume"] is True and calls[0][3]["progress"] is False
    assert not jobs[0].path.exists()


def test_failed_point_is_reported_and_the_rest_go_on(clip, tmp_path):
    jobs = sweep.plan([sweep.clip_input(clip)], tmp_path, [], {"x265": [22, 99]})
    summary = sweep.run_jobs(jobs, progress=False)
    assert summary.computed == ["carphone/x265/qp22"]
    assert "QP 99 outside" in summary.failed["carphone/x265/qp99"]


def test_parallel_workers(clip, tmp_path):
    seqs = [sweep.clip_input(clip, name="a"), sweep.clip_input(clip, frames=2, name="b")]
    summary = sweep.run_sweep(seqs, tmp_path, [], {"x265": [27, 37]}, workers=2, progress=False)
    assert summary.failed == {} and len(summary.computed) == 4
    assert read_results(tmp_path / "results" / sweep.AVERAGE / "x265.json").extra["sequences"] == ["a", "b"]


def test_published_curves_only_on_rgb_panels():
    per_seq, avg = published_curves(["hinerv-uvg"], ["ReadySteadyGo", "Beauty", "mine"])
    assert len(per_seq["ReadySteadyGo"]) == 1 and len(per_seq["Beauty"]) == 1 and per_seq["mine"] == []
    assert "RGB PSNR" in avg[0].label and avg[0].metric == "psnr-rgb"
    mcl, _ = published_curves(["hinerv-mcljcv"], ["videoSRC01"])
    assert len(mcl["videoSRC01"]) == 1
    pub = [PublishedCurve("HiNeRV [published, RGB PSNR]", [0.1, 0.2], [30.0, 32.0], "psnr-rgb")]
    kinds = {m: [s[3] for s in panel_series({}, m, pub)] for m in ("psnr-yuv", "psnr-y", "psnr-rgb", "ms-ssim")}
    assert kinds == {"psnr-yuv": [], "psnr-y": [], "psnr-rgb": ["published"], "ms-ssim": []}
    with pytest.raises(ValueError):
        PublishedCurve("x", [0.1], [30.0], "psnr")


def test_cli_argument_parsing():
    assert rd_cli.anchor_ladders("x265,libx264", ["22,27", "x264=20,30"]) == {"x265": [22, 27], "x264": [20, 30]}
    assert rd_cli.anchor_ladders("none", []) == {}
    assert rd_cli.anchor_ladders("svtav1", [])["svtav1"] == [23, 32, 41, 50, 59]
    with pytest.raises(ValueError, match="not in --anchors"):
        rd_cli.anchor_ladders("x265", ["svtav1=30"])
    with pytest.raises(ValueError, match="unknown anchor codec 'vp9'"):
        rd_cli.anchor_ladders("vp9", [])


@pytest.mark.parametrize("argv, message", [
    (["--clip", "/no/such.y4m", "--out", "{tmp}"], "does not exist"),
    (["--clip", "carphone", "--out", "{tmp}", "--presets", "huge"], "unknown preset 'huge'"),
    (["--clip", "carphone", "--out", "{tmp}", "-o", "colour=1"], "expected KEY=VALUE"),
    (["--clip", "carphone", "--out", "{tmp}", "--jobs", "0"], "--jobs must be at least 1"),
])
def test_cli_input_errors_exit_2(argv, message, tmp_path, capsys):
    assert rd_cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_dataset_cli_lists_missing_files(tmp_path, capsys):
    assert uvg_cli.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--sequences", "Beauty,Jockey"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: UVG: 2 of 2 sequences missing")
    assert "Beauty_1920x1080_120fps_420_8bit_YUV.yuv" in err and "Jockey" in err
    assert uvg_cli.main(["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--sequences", "Nope"]) == 2
    assert "no sequence 'Nope'" in capsys.readouterr().err


def test_plugins_reach_every_point_through_repeated_o():
    import argparse

    args = argparse.Namespace(option=["plugins=l1:weight=1e-6", "plugins=l1:stages=all", "loss=mse"], epochs=None,
                              bits=None)
    opts = rd_cli.encode_options(args)
    assert opts["plugins"] == ("l1:weight=1e-6", "l1:stages=all") and opts["loss"] == "mse"
    ((_, settings),) = sweep.hinerv_points(["xxs"], **opts)
    assert settings["plugins"] == ("l1:weight=1e-06,stages=train", "l1:weight=1e-06,stages=all")
