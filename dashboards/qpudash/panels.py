"""Thin helpers over grafana-foundation-sdk builders: one function per panel kind.

Every helper takes a title, a description and a unit, so a panel without them cannot be built
(the lint test checks the rendered JSON as well). Every panel and query uses the `${datasource}`
variable. Layout (gridPos, ids) is assigned by ``layout.Board``, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    gauge,
    heatmap,
    prometheus,
    stat,
    statetimeline,
    table,
    text,
    timeseries,
)
from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    ValueMap,
    ValueMappingResult,
)
from grafana_foundation_sdk.models.heatmap import HeatmapColorMode
from grafana_foundation_sdk.models.prometheus import PromQueryFormat
from grafana_foundation_sdk.models.text import TextMode

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")

# Colours: Grafana's named palette.
GREEN, YELLOW, ORANGE, RED = "green", "yellow", "orange", "red"


@dataclass(frozen=True)
class Query:
    """One PromQL target. ``instant`` queries feed stats, gauges and tables of the current state."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False


def _targets(queries: list[Query]):
    out = []
    for i, q in enumerate(queries):
        target = (
            prometheus.Dataquery()
            .datasource(DATASOURCE)
            .expr(q.expr)
            .legend_format(q.legend or "__auto")
            .ref_id(chr(ord("A") + i))
        )
        if q.instant:
            target = target.instant()
        else:
            target = target.range()
        if q.table:
            target = target.format(PromQueryFormat.TABLE)
        out.append(target)
    return out


def thresholds(base: str, *steps: tuple[float, str]):
    """Absolute thresholds: ``base`` colour below the first step, then each (value, colour)."""
    return (
        dashboard.ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=None, color=base)] + [Threshold(value=v, color=c) for v, c in steps])
    )


def value_map(mapping: dict[str, tuple[str, str]]) -> list[ValueMap]:
    """{"1": ("Up", "green")} -> a value mapping with display text and colour."""
    return [
        ValueMap(
            options={
                value: ValueMappingResult(text=label, color=color, index=i)
                for i, (value, (label, color)) in enumerate(mapping.items())
            }
        )
    ]


def _common(builder, title: str, description: str, unit: str, queries: list[Query]):
    builder = builder.title(title).description(description).datasource(DATASOURCE).unit(unit)
    for target in _targets(queries):
        builder = builder.with_target(target)
    return builder


def stat_panel(title: str, description: str, unit: str, queries: list[Query], *, steps=None,
               decimals: float | None = None, time_from: str | None = None, mappings=None,
               graph: bool = False, calc: str = "lastNotNull"):
    b = _common(stat.Panel(), title, description, unit, queries)
    b = (
        b.reduce_options(common_builders.ReduceDataOptions().calcs([calc]).values(False))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA if graph else common.BigValueGraphMode.NONE)
        .text_mode(common.BigValueTextMode.AUTO)
    )
    if steps is not None:
        b = b.thresholds(steps)
    if decimals is not None:
        b = b.decimals(decimals)
    if time_from:
        b = b.time_from(time_from)
    if mappings:
        b = b.mappings(mappings)
    return b


def gauge_panel(title: str, description: str, unit: str, queries: list[Query], *, steps, min_value: float = 0,
                max_value: float = 1, time_from: str | None = None):
    b = _common(gauge.Panel(), title, description, unit, queries)
    b = (
        b.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .min(min_value).max(max_value).thresholds(steps).show_threshold_markers(True)
    )
    if time_from:
        b = b.time_from(time_from)
    return b


def bargauge_panel(title: str, description: str, unit: str, queries: list[Query], *, steps,
                   min_value: float | None = 0, max_value: float | None = None):
    b = _common(bargauge.Panel(), title, description, unit, queries)
    b = (
        b.reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .display_mode(common.BarGaugeDisplayMode.BASIC)
        .orientation(common.VizOrientation.HORIZONTAL)
        .thresholds(steps)
    )
    if min_value is not None:
        b = b.min(min_value)
    if max_value is not None:
        b = b.max(max_value)
    return b


def timeseries_panel(title: str, description: str, unit: str, queries: list[Query], *, min_value: float | None = None,
                     max_value: float | None = None, steps=None, threshold_line: bool = False, log_scale: bool = False,
                     legend_table: bool = False):
    b = _common(timeseries.Panel(), title, description, unit, queries)
    legend = common_builders.VizLegendOptions().show_legend(True).placement(common.LegendPlacement.BOTTOM)
    legend = legend.display_mode(common.LegendDisplayMode.TABLE if legend_table else common.LegendDisplayMode.LIST)
    if legend_table:
        legend = legend.calcs(["lastNotNull", "max"])
    b = b.legend(legend).line_width(1).fill_opacity(10).show_points(common.VisibilityMode.NEVER)
    if min_value is not None:
        b = b.min(min_value)
    if max_value is not None:
        b = b.max(max_value)
    if steps is not None:
        b = b.thresholds(steps)
    if threshold_line:
        b = b.thresholds_style(common_builders.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED))
    if log_scale:
        b = b.scale_distribution(common_builders.ScaleDistributionConfig().type(common.ScaleDistribution.LOG).log(10))
    return b


def state_timeline_panel(title: str, description: str, unit: str, queries: list[Query], *, mappings, steps):
    b = _common(statetimeline.Panel(), title, description, unit, queries)
    return b.mappings(mappings).thresholds(steps).show_value(common.VisibilityMode.NEVER).merge_values(True).fill_opacity(80)


def table_panel(title: str, description: str, unit: str, queries: list[Query], *, overrides=(), merge: bool = False,
                hide_columns: tuple[str, ...] = ("Time",), sort_by: str | None = None, steps=None):
    b = _common(table.Panel(), title, description, unit, queries)
    transformations = []
    if merge:
        transformations.append(DataTransformerConfig(id_val="merge", options={}))
    if hide_columns:
        transformations.append(
            DataTransformerConfig(
                id_val="organize",
                options={"excludeByName": {c: True for c in hide_columns}, "renameByName": {}, "indexByName": {}},
            )
        )
    if sort_by:
        transformations.append(
            DataTransformerConfig(id_val="sortBy", options={"sort": [{"field": sort_by, "desc": True}]})
        )
    for t in transformations:
        b = b.with_transformation(t)
    if steps is not None:
        b = b.thresholds(steps)
    for name, props in overrides:
        b = b.override_by_name(name, props)
    return b


def heatmap_panel(title: str, description: str, unit: str, queries: list[Query], *, scheme: str = "Spectral",
                  reverse: bool = False):
    """Rows = series (one per qubit or edge), columns = time, colour = value: the data are
    already one value per cell, so Grafana must not bucket them (calculate = false)."""
    b = _common(heatmap.Panel(), title, description, unit, queries)
    return (
        b.calculate(False)
        .color(heatmap.HeatmapColorOptions().mode(HeatmapColorMode.SCHEME).scheme(scheme).reverse(reverse).steps(64))
        .y_axis(heatmap.YAxisConfig().unit("none").axis_placement(common.AxisPlacement.LEFT))
        .rows_frame(heatmap.RowsHeatmapOptions().layout(common.HeatmapCellLayout.UNKNOWN))
        .cell_values(heatmap.CellValues().unit(unit))
        .show_legend()
        .tooltip(heatmap.HeatmapTooltip().mode(common.TooltipDisplayMode.SINGLE).y_histogram(False))
    )


def text_panel(title: str, description: str, content: str):
    return text.Panel().title(title).description(description).mode(TextMode.MARKDOWN).content(content)


def link_override(column: str, title: str, url: str):
    """A table column whose cells link somewhere (``url`` may use ${__value.raw}, ${__data.fields.x})."""
    return (column, [DynamicConfigValue(id_val="links", value=[{"title": title, "url": url, "targetBlank": True}])])


def unit_override(column: str, unit: str, display_name: str | None = None):
    props = [DynamicConfigValue(id_val="unit", value=unit)]
    if display_name:
        props.append(DynamicConfigValue(id_val="displayName", value=display_name))
    return (column, props)
