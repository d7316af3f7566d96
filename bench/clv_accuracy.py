"""Accuracy of the predictive CLV model (domain/profiles/clv.py) on a real order history.

Data: /work/shared/data/online-retail-sample.csv (UCI "Online Retail", Daqing Chen 2015,
DOI 10.24432/C5BW33, CC BY 4.0; a 40,000-row sample, so baskets are incomplete). Invoices with a
customer id and positive lines are orders; cancellations (``C`` invoices) and guest rows are left
out. The model is fitted on the orders before ``--split`` (calibration) exactly as the recompute
fits it, and predicts each calibration customer's orders and revenue in the holdout after it.

Reported: MAE of predicted vs actual holdout orders per customer against two baselines (the
calibration order rate carried forward, and zero), and MAE of holdout revenue.

    .venv/bin/python bench/clv_accuracy.py [--data PATH] [--split 2011-09-10]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.data import retail_sample
from domain.profiles.clv import Buyer, fit_and_predict

DATA = retail_sample()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--split", default="2011-09-10", help="calibration ends here (ISO date)")
    p.add_argument("--end", default="2011-12-10", help="holdout ends here (ISO date)")
    args = p.parse_args(argv)
    split, end = datetime.fromisoformat(args.split), datetime.fromisoformat(args.end)
    horizon = (end - split).days

    invoices: dict[str, tuple[str, datetime, float]] = {}
    with args.data.open(newline="") as fh:
        for r in csv.DictReader(fh):
            q, price = int(r["Quantity"]), float(r["UnitPrice"])
            if not r["CustomerID"] or r["InvoiceNo"].startswith("C") or q <= 0 or price <= 0:
                continue
            at = datetime.fromisoformat(r["InvoiceDate"])
            customer, at, total = invoices.get(r["InvoiceNo"], (r["CustomerID"], at, 0.0))
            invoices[r["InvoiceNo"]] = (customer, at, total + q * price)
    orders: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for customer, at, total in invoices.values():
        orders[customer].append((at, total))

    buyers, actual, actual_rev, aov = [], {}, {}, {}
    for n, (_customer, history) in enumerate(sorted(orders.items())):
        cal = sorted(o for o in history if o[0] < split)
        if not cal:
            continue
        hold = [o for o in history if split <= o[0] < end]
        first, last = cal[0][0], cal[-1][0]
        aov[n] = statistics.fmean(o[1] for o in cal)
        buyers.append(
            Buyer(
                customer_id=n,
                frequency=len(cal) - 1,
                recency=(last - first).total_seconds() / 86400,
                age=(split - first).total_seconds() / 86400,
                average_value=aov[n],
            )
        )
        actual[n], actual_rev[n] = len(hold), sum(o[1] for o in hold)

    started = time.perf_counter()
    fit = fit_and_predict(buyers, horizon_days=horizon)
    seconds = time.perf_counter() - started
    predicted = {b.customer_id: fit.predictions[b.customer_id] for b in buyers}
    naive = {b.customer_id: (b.frequency + 1) / max(b.age, 0.1) * horizon for b in buyers}

    def mae(pred: Mapping[int, float], truth: Mapping[int, float]) -> float:
        return statistics.fmean(abs(pred[k] - truth[k]) for k in truth)

    print(
        f"calibration customers: {len(buyers)} (repeat: {fit.repeat_buyers}); holdout {horizon} days"
    )
    print(f"fit and predict seconds: {seconds:.2f}")
    print(f"params: {fit.params}")
    print(
        f"holdout orders actual: {sum(actual.values())}, predicted: "
        f"{sum(p.expected_purchases for p in predicted.values()):.0f}, naive: {sum(naive.values()):.0f}"
    )
    print(
        f"MAE orders model: {mae({k: p.expected_purchases for k, p in predicted.items()}, actual):.3f}"
    )
    print(f"MAE orders naive rate: {mae(naive, actual):.3f}")
    print(f"MAE orders zero: {mae(dict.fromkeys(actual, 0.0), actual):.3f}")
    print(
        f"MAE revenue model: {mae({k: p.expected_value for k, p in predicted.items()}, actual_rev):.2f}"
    )
    print(
        f"MAE revenue naive rate x AOV: {mae({k: naive[k] * aov[k] for k in naive}, actual_rev):.2f}"
    )
    print(f"mean actual revenue: {statistics.fmean(actual_rev.values()):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
