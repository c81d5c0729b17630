"""Dashboard assembly: variables, rows and a deterministic grid layout.

The SDK can auto-place panels, but in 0.0.21 it lets a panel run past the 24-column edge, so
``Board`` assigns gridPos and stable panel ids itself: panels fill a row left to right and wrap.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DashboardLinkType,
    GridPos,
    VariableRefresh,
    VariableSort,
)

from .panels import DATASOURCE

GRID_WIDTH = 24
SELECTOR = 'job=~"$job", instance=~"$instance"'


def datasource_variable():
    return dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")


def query_variable(name: str, label: str, query: str, *, multi: bool, include_all: bool, all_value: str | None = None,
                   sort: VariableSort = VariableSort.ALPHABETICAL_ASC):
    v = (
        dashboard.QueryVariable(name)
        .label(label)
        .query(query)
        .definition(query)
        .datasource(DATASOURCE)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(sort)
        .multi(multi)
        .include_all(include_all)
    )
    if all_value is not None:
        v = v.all_value(all_value)
    return v


def job_instance_variables():
    """`job` and `instance` as dashboard-linter wants them: multi-select, All = `.+`."""
    return [
        query_variable("job", "Job", "label_values(qpu_exporter_build_info, job)", multi=True, include_all=True,
                       all_value=".+"),
        query_variable("instance", "Instance", 'label_values(qpu_exporter_build_info{job=~"$job"}, instance)',
                       multi=True, include_all=True, all_value=".+"),
    ]


@dataclass
class Board:
    title: str
    uid: str
    description: str
    tags: tuple[str, ...] = ("qpu-exporter",)
    time_from: str = "now-24h"
    refresh: str = "1m"
    variables: list = field(default_factory=list)
    _items: list = field(default_factory=list)  # ("row", title) | ("panel", builder, w, h)

    def row(self, title: str) -> Board:
        self._items.append(("row", title))
        return self

    def add(self, panel, w: int, h: int) -> Board:
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"panel width {w} outside 1..{GRID_WIDTH}")
        self._items.append(("panel", panel, w, h))
        return self

    def build(self):
        d = (
            dashboard.Dashboard(self.title)
            .uid(self.uid)
            .description(self.description)
            .tags(list(self.tags))
            .time(self.time_from, "now")
            .timezone("utc")
            .refresh(self.refresh)
            .tooltip(DashboardCursorSync.CROSSHAIR)
            .editable()
            .link(
                dashboard.DashboardLink("QPU dashboards")
                .type(DashboardLinkType.DASHBOARDS)
                .tags(["qpu-exporter"])
                .as_dropdown(True)
                .keep_time(True)
                .include_vars(True)
            )
        )
        for v in self.variables:
            d = d.with_variable(v)
        x = y = row_height = 0
        next_id = 1
        for item in self._items:
            if item[0] == "row":
                if x:
                    y += row_height
                x = row_height = 0
                d = d.with_row(dashboard.Row(item[1]).id(next_id).grid_pos(GridPos(h=1, w=GRID_WIDTH, x=0, y=y)))
                y += 1
            else:
                _, panel, w, h = item
                if x + w > GRID_WIDTH:
                    y += row_height
                    x = row_height = 0
                d = d.with_panel(panel.id(next_id).grid_pos(GridPos(h=h, w=w, x=x, y=y)))
                x += w
                row_height = max(row_height, h)
            next_id += 1
        return d.build()


def to_json(built) -> str:
    return JSONEncoder(sort_keys=True, indent=2).encode(built) + "\n"
