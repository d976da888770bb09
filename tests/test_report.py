"""`forethought report`: one self-contained HTML page, checked in a real (headless) browser:
it renders without script errors, every figure loads, and its tables hold the run's numbers."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from forethought.cli import main
from forethought.tools.report import ReportArgs, report
from forethought.trainers import train
from helpers import tiny_config

BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome")
RESULTS = Path(__file__).parents[1] / "benchmarks" / "results"


def browser() -> str:
    found = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if found is None:
        pytest.skip("no headless Chromium here (Debian: apt-get install chromium-headless-shell)")
    return found


def render(page: Path, screenshot: Path) -> str:
    """The page's DOM after load, and a screenshot of it."""
    flags = ["--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1280,1600"]
    url = page.resolve().as_uri()
    subprocess.run(
        [browser(), *flags, f"--screenshot={screenshot}", url], check=True, capture_output=True
    )
    dom = subprocess.run([browser(), *flags, "--dump-dom", url], check=True, capture_output=True)
    return dom.stdout.decode()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    train(tiny_config(base / "a", episodes=3, seed=0))
    train(tiny_config(base / "b", episodes=3, seed=1))
    return base / "a", base / "b"


def test_report_of_runs_renders_in_a_browser(two_runs, tmp_path):
    page = report(ReportArgs(paths=two_runs, out=tmp_path / "report.html", explain=1))
    dom = render(page, tmp_path / "report.png")
    figures = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    assert figures and figures[1] == figures[2] and int(figures[2]) >= 6, figures
    assert 'data-errors="0"' in dom
    for run in two_runs:  # the tables hold each run's evaluation returns
        last = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]
        assert f"{last['eval_return']:.4g}" in dom
    assert "Side by side" in dom and "reproduced" in dom
    assert (tmp_path / "report.png").stat().st_size > 20_000


def test_report_of_benchmark_results_renders(tmp_path):
    page = report(ReportArgs(paths=(RESULTS,), out=tmp_path / "results.html"))
    dom = render(page, tmp_path / "results.png")
    figures = re.search(r'data-figures="(\d+)/(\d+)"', dom)
    assert figures and figures[1] == figures[2] and int(figures[2]) >= 3
    assert "sample_efficiency.json" in dom and 'data-errors="0"' in dom


def test_bad_paths_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "is not a directory" in capsys.readouterr().out
    assert main(["report", str(tmp_path)]) == 2
    assert "neither a run directory nor a folder of results" in capsys.readouterr().out
    (tmp_path / "config.json").write_text(json.dumps(tiny_config(tmp_path).to_dict(), default=str))
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished episode yet" in capsys.readouterr().out
