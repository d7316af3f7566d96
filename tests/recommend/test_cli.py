"""``precis recommend evaluate`` as a user runs it: a subprocess, no database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.data import retail_sample
from recommend import synthetic

PRECIS = str(Path(sys.executable).parent / "precis")


def evaluate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRECIS_")}
    return subprocess.run(
        [PRECIS, "recommend", "evaluate", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )


def table(out: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split("|") for line in out.splitlines() if line.startswith("| ")]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows}


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = synthetic.generate(users=200, items=60, groups=4, seed=5)
    return synthetic.write_csv(data, tmp_path_factory.mktemp("reco") / "small.csv")


def test_markdown_table_on_a_generated_csv(small_csv: Path, tmp_path: Path) -> None:
    done = evaluate(
        tmp_path, "--data", str(small_csv), "--algorithms", "itemknn,ease(l2=50)", "--k", "5"
    )
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows) == ["algorithm", "popularity", "itemknn", "ease", "hybrid"]
    assert rows["algorithm"][:5] == ["P@5", "R@5", "NDCG@5", "MAP@5", "HR@5"]
    for name in ("popularity", "itemknn", "ease", "hybrid"):
        assert 0.0 <= float(rows[name][2]) <= 1.0
        assert rows[name][8] == rows[name][9] == "-"  # no ratings: no RMSE, no MAE
    assert float(rows["itemknn"][2]) > float(rows["popularity"][2])
    assert "paired bootstrap 95% CI" in done.stdout
    assert "Tuned on validation: itemknn shrink=" in done.stdout
    assert "Tuned on validation: ease" not in done.stdout  # l2 was given, so not tuned
    assert "training" in done.stderr  # progress goes to stderr


def test_json_output(small_csv: Path, tmp_path: Path) -> None:
    done = evaluate(
        tmp_path,
        "--data",
        str(small_csv),
        "--algorithms",
        "itemknn",
        "--json",
        "--no-tune",
        "--seed",
        "3",
        "--resamples",
        "1000",
        "--save",
        str(tmp_path / "model.bin"),
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    from recommend.hybrid import Hybrid

    model = Hybrid.load(tmp_path / "model.bin")  # the model fitted on the training split
    assert model.weights["HOME"] == {"itemknn": 0.0, "popularity": 0.0} | body["hybrid"]["weights"]
    assert "model written to" in done.stderr
    assert [r["algorithm"] for r in body["results"]] == ["popularity", "itemknn", "hybrid"]
    assert body["seed"] == 3 and body["bootstrap"]["resamples"] == 1000
    assert body["tuned_params"] == {}
    lo, hi = body["bootstrap"]["ci95"]
    assert lo <= body["bootstrap"]["mean"] <= hi


def test_explicit_ratings_report_rmse_and_mae(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["user_id,item_id,timestamp,rating"]
    for u in range(40):
        for n, i in enumerate(rng.choice(30, size=8, replace=False)):
            lines.append(f"u{u},i{i},2024-01-{n + 1:02d}T10:00:00,{rng.integers(1, 6)}")
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(lines) + "\n")
    done = evaluate(tmp_path, "--data", str(path), "--algorithms", "svd,slopeone", "--no-tune")
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert float(rows["svd"][8]) > 0 and float(rows["svd"][9]) > 0  # RMSE, MAE
    assert float(rows["slopeone"][8]) > 0
    assert rows["popularity"][8] == "-"


def test_a_slice_of_the_retail_sample(tmp_path: Path) -> None:
    source = retail_sample()
    if not source.exists():
        pytest.skip(f"{source} is not here (shared/ beside the repository)")
    with source.open() as fh:
        head = [next(fh) for _ in range(2001)]
    path = tmp_path / "retail-2000.csv"
    path.write_text("".join(head))
    done = evaluate(tmp_path, "--data", str(path))
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows)[1:] == [
        "popularity",
        "trending",
        "itemknn",
        "ease",
        "als",
        "bpr",
        "content",
        "together",
        "session",
        "svd",
        "hybrid",
    ]
    assert "Diversity basis: content." in done.stdout
    assert done.stdout.startswith(f"Data: {path}: ")
    hybrid, best = (
        float(rows["hybrid"][2]),
        max(float(r[2]) for n, r in rows.items() if n not in ("algorithm", "hybrid")),
    )
    verdict = "yes" if hybrid >= best else "NO"
    assert "Hybrid >= best single component on test NDCG@10 (" in done.stdout
    assert f"): {verdict} (hybrid {hybrid:.4f})." in done.stdout


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("", (), "empty file"),
        ("user,item,time\nu,i,1\n", (), "unknown columns"),
        ("user_id,item_id,timestamp\nu,i,last tuesday\n", (), ":2: bad timestamp 'last tuesday'"),
        ("user_id,item_id,timestamp\nu,i,1\nu,j,2\n", (), "nobody to evaluate"),
        (
            "user_id,item_id,timestamp\nu,i,1\n",
            ("--algorithms", "magic"),
            "unknown algorithm 'magic'",
        ),
        (
            "user_id,item_id,timestamp\nu,i,1\n",
            ("--algorithms", "ease(l2=)"),
            "ease(l2=): l2 needs a value",
        ),
        (
            "user_id,item_id,timestamp\nu,i,1\n",
            ("--algorithms", "ease(l2=big)"),
            "l2 must be a number",
        ),
        ("user_id,item_id,timestamp\nu,i,1\n", ("--algorithms", "svd(n_factor=3)"), "n_factor"),
        ("user_id,item_id,timestamp\nu,i,1\n", ("--algorithms", ","), "no algorithm given"),
    ],
)
def test_bad_input_exits_2_with_a_message(
    tmp_path: Path, content: str, args: tuple[str, ...], message: str
) -> None:
    """In process (the same command object) to keep the suite fast; one subprocess case below."""
    from typer.testing import CliRunner

    from api.cli import app

    path = tmp_path / "in.csv"
    path.write_text(content)
    done = CliRunner().invoke(app, ["recommend", "evaluate", "--data", str(path), *args])
    assert done.exit_code == 2, (done.stdout, done.stderr)
    assert message in " ".join(done.stderr.split()), done.stderr
    assert done.stdout == ""


def test_missing_file_and_help(tmp_path: Path) -> None:
    done = evaluate(tmp_path, "--data", str(tmp_path / "nope.csv"))
    assert done.returncode == 2 and "no such file" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    helped = evaluate(tmp_path, "--help")
    assert helped.returncode == 0 and "--algorithms" in helped.stdout
