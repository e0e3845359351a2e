"""The web page at `/` of `tunelab serve`: the runs, a run's report with a try-it box, a comparison of runs.

Server-rendered HTML from the same templates as `tunelab report` (no front-end build); the only
script is the try-it box calling `/v1/predict`. The page changes nothing: admin actions exist only
when the server has an admin token, and then still need it from the user.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures.

from typing import Annotated, Any

from tunelab.errors import UserError
from tunelab.registry import RUN_ID, RunStore


def runs_table(store: RunStore) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows for the runs list, and the comparisons with the query string of their runs."""
    from urllib.parse import urlencode

    from tunelab.report import headline

    runs, comparisons = [], []
    for run in store.list():
        manifest = run.manifest
        if run.kind == "comparison":
            comparisons.append({"id": run.id, "count": len(manifest.get("runs", [])), "created": manifest.get("created", ""),
                                "query": urlencode([("runs", r) for r in manifest.get("runs", [])])})
            continue
        metric, score = headline(run)
        test = manifest.get("metrics", {}).get("test", {}).get(metric)
        runs.append({"id": run.id, "task": manifest.get("task_kind", manifest.get("task", "classification")),
                     "strategy": manifest.get("strategy", "-"), "model": manifest.get("base_model", {}).get("given", "-"),
                     "metric": metric, "validation": f"{score:.4f}" if isinstance(score, (int, float)) else "-",
                     "test": f"{test:.4f}" if isinstance(test, (int, float)) else "-",
                     "seconds": f"{manifest.get('train_seconds', 0):.1f}", "created": manifest.get("created", "")})
    return runs, comparisons


def add_dashboard(app: Any, store: RunStore, admin: bool) -> None:
    """Register GET /, /runs/{id} and /compare on the FastAPI app."""
    from fastapi import HTTPException, Query
    from fastapi.responses import HTMLResponse
    from jinja2 import Environment, PackageLoader, select_autoescape

    from tunelab.report import render

    environment = Environment(loader=PackageLoader("tunelab", "templates"), autoescape=select_autoescape(["html"]))

    def get(run_id: str) -> Any:
        if not RUN_ID.match(run_id):
            raise HTTPException(404, f"run {run_id!r}: not a run name")
        try:
            return store.get(run_id)
        except UserError as error:
            raise HTTPException(404, str(error)) from None

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        runs, comparisons = runs_table(store)
        return environment.get_template("dashboard.html").render(store=str(store.root), runs=runs, comparisons=comparisons,
                                                                 admin=admin)

    @app.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
    def run_page(run_id: str) -> str:
        run = get(run_id)
        if run.kind != "run":
            raise HTTPException(404, f"{run_id}: a comparison; open it from the runs list")
        return render([run], f"run {run.id}", dashboard={"try_it": True, "admin": admin})

    @app.get("/compare", response_class=HTMLResponse, include_in_schema=False)
    def compare_page(runs: Annotated[list[str] | None, Query()] = None) -> str:
        if not runs:
            raise HTTPException(422, "runs: select at least one run to compare")
        return render([get(r) for r in runs], f"comparison of {len(runs)} runs", dashboard={"try_it": False, "admin": admin})
