"""``precis recommend ...``: offline evaluation of recommendation models (no database needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

recommend_app = typer.Typer(help="Recommendation models.", no_args_is_help=True)
err = Console(stderr=True)


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@recommend_app.command("evaluate")
def evaluate_command(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="CSV: user_id,item_id,timestamp (ISO 8601 or Unix seconds) with an optional "
            "rating or weight column, or order lines shaped like the Online Retail sample.",
        ),
    ],
    algorithms: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated algorithms, each `name` or `name(param=value,...)`, e.g. "
            "'ease(l2=300),svd(n_factors=50),knnbaseline(user_based=true,sim=pearson)'. "
            "Known: popularity, trending, itemknn, ease, als, bpr, content, together, session, "
            "svd, svdpp, nmf, baselineonly, knnwithmeans, knnbaseline, slopeone. Default: "
            "popularity, trending, itemknn, ease, als, bpr, content, together, session, svd. "
            "Popularity always runs (the baseline)."
        ),
    ] = None,
    k: Annotated[int, typer.Option("--k", min=1, max=100, help="List length.")] = 10,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of markdown.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed for models, sampling and the bootstrap.")] = 0,
    resamples: Annotated[
        int, typer.Option(min=1000, max=100_000, help="Bootstrap resamples.")
    ] = 2000,
    tune: Annotated[
        bool,
        typer.Option(help="Tune each component's main parameter on the validation split."),
    ] = True,
    save: Annotated[
        Path | None,
        typer.Option(help="Also write the hybrid model (fitted on the training split) here."),
    ] = None,
    bundle: Annotated[
        Path | None,
        typer.Option(
            help="Also write the serving bundle of that model here (what API processes load: "
            "precomputed lists, no pickle)."
        ),
    ] = None,
) -> None:
    """Evaluate algorithms, their hybrid and popularity on a time-based holdout (the protocol in
    docs/recommendations.md) and print the metrics table with a bootstrap interval."""
    from recommend.components import DEFAULT_ALGORITHMS, SpecError, make, split_specs
    from recommend.data import DataError, load
    from recommend.evaluate import EvaluationError, run
    from recommend.report import markdown

    try:
        specs = split_specs(algorithms) if algorithms else list(DEFAULT_ALGORITHMS)
        if not specs:
            raise SpecError("no algorithm given")
        for s in specs:
            make(s)  # fail on a bad name or parameter before reading the data
    except SpecError as exc:
        raise _fail(str(exc)) from exc
    for path in (save, bundle):
        if path is not None and not path.parent.is_dir():
            raise _fail(f"cannot write {path}: no directory {path.parent}")

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as progress:
        bars: dict[str, Any] = {}
        current: list[str] = []

        def report(step: str, done: int, total: int) -> None:
            stage = step.split(":", 1)[0]
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=total)
            progress.update(bars[stage], completed=done, total=total, description=step)
            current[:] = [step]

        try:
            report("loading", 0, 1)
            interactions = load(data)
            report("loading", 1, 1)
            result = run(
                interactions,
                specs,
                k=k,
                seed=seed,
                resamples=resamples,
                tune=tune,
                keep_model=save is not None or bundle is not None,
                progress=report,
            )
        except (DataError, EvaluationError, SpecError) as exc:
            progress.stop()
            raise _fail(str(exc)) from exc
        except MemoryError as exc:
            progress.stop()
            raise _fail(f"out of memory during {current[0] if current else 'loading'}") from exc

    if save is not None and result.model is not None:
        digest = result.model.save(save)
        err.print(f"model written to {save} (sha256 {digest})")
    if bundle is not None and result.model is not None:
        from recommend.serving import Bundle

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("precomputing lists", total=None)
            built = Bundle.build(
                result.model,
                progress=lambda step, done, total: progress.update(
                    task, completed=done, total=total
                ),
            )
        blob = built.dumps()
        try:
            tmp = bundle.with_suffix(bundle.suffix + ".tmp")
            tmp.write_bytes(blob)
            tmp.replace(bundle)
        except OSError as exc:
            raise _fail(f"cannot write {bundle}: {exc.strerror}") from exc
        err.print(f"serving bundle written to {bundle} (sha256 {Bundle.sha256_of(blob)})")
    if as_json:
        print(json.dumps(result.to_json(), indent=2, default=_json_default))
    else:
        print(markdown(result))


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
