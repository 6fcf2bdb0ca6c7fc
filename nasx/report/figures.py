"""The report's plotly figures: Pareto fronts, search progress, error EDFs and parameter importances.

Every string that comes from a user (names, genotype strings, parameter names) is HTML-escaped
before it reaches plotly, whose labels understand a little HTML (``<b>``, ``<a href>``...).
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from nasx.report.collect import Source
from nasx.results import edf, front_steps, hypervolume_progress, normalized_edf
from nasx.results.noise import Estimate
from nasx.search.record import Role, Status

COST_TITLES = {"macs": "MACs (multiply-accumulates, batch 1)", "params": "parameters"}
PALETTE = qualitative.D3 + qualitative.Set2
STOPPED = "#9e9e9e"
BASELINE = "#222222"
RUN = "run"  # the role of a `nasx train` run folder's one row (collect.from_run)
HAND_DESIGNED = "#555555"
EDF_BINS = 8
LAYOUT = {"template": "plotly_white", "height": 460, "margin": {"l": 60, "r": 20, "t": 60, "b": 50}}


def esc(value: object) -> str:
    return html.escape(str(value), quote=False)


def human(n: float) -> str:
    """12.3M, 845K, 1.52G: costs in hover text and headlines."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:.0f}"


def hover(row: pd.Series) -> str:
    """Hover text of one trial: name, family, accuracy, epochs, state, costs, digest and the genotype's string form."""
    who = row["name"] if row["role"] != Role.CANDIDATE else f"trial {row['number']}"
    lines = [
        f"<b>{esc(who)}</b> · {esc(row['source'])} · {esc(row['family'] or '')}",
        f"val acc {100 * row['val_acc']:.2f}% · {row['epochs']} epochs · {esc(row['state'])}",
        f"params {int(row['params']):,} · MACs {int(row['macs']):,}",
        f"digest {esc(row['digest'] or '')}",
    ]
    string = str(row["string"] or "")
    wrapped = textwrap.wrap(string, 90, break_on_hyphens=False)
    if len(wrapped) > 6:
        wrapped = [*wrapped[:6], "…"]
    return "<br>".join(lines + [esc(w) for w in wrapped])


@dataclass(frozen=True)
class Groups:
    """Which column colours the points (family for one source, source when several are compared) and the colours."""

    column: str
    colors: dict[str, str]

    @classmethod
    def of(cls, frame: pd.DataFrame) -> Groups:
        column = "source" if frame["source"].nunique() > 1 else "family"
        keys = sorted(str(k) for k in frame[column].fillna("").unique())
        return cls(column, {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(keys)})


def final_estimate(r: Any) -> Estimate:
    """A final_summary row's test accuracy as an estimate over its seeds (no interval for one seed)."""
    half = None if pd.isna(r.test_ci) else float(r.test_ci)
    low, high = (None, None) if half is None else (r.test_mean - half, r.test_mean + half)
    return Estimate(float(r.test_mean), low, high, int(r.seeds), "seeds")


def combined(sources: Sequence[Source]) -> pd.DataFrame:
    return pd.concat([s.frame for s in sources], ignore_index=True)


def _has_costs(frame: pd.DataFrame) -> pd.Series:
    return frame["val_acc"].notna() & frame["macs"].notna() & frame["params"].notna()


def full_candidates(frame: pd.DataFrame) -> pd.DataFrame:
    """Candidates trained to the study's full fidelity (not stopped early, not a duplicate)."""
    return frame[(frame["role"] == Role.CANDIDATE) & (frame["state"] == Status.COMPLETE) & _has_costs(frame)]


def references(frame: pd.DataFrame) -> pd.DataFrame:
    """Baselines and training runs that finished: the labelled markers."""
    return frame[frame["role"].isin([Role.BASELINE.value, RUN]) & (frame["state"] == Status.COMPLETE) & _has_costs(frame)]


def hand_designed_front(frame: pd.DataFrame, cost: str, name: str, dash: str = "dot") -> go.Scatter | None:
    """The non-dominated finished baselines of ``frame`` (the hand-designed networks) as one step line; None without any."""
    base = references(frame)
    base = base[base["role"] == "baseline"]
    if not len(base):
        return None
    x, y = front_steps(base["val_acc"].to_numpy(float), base[cost].to_numpy(float))
    line = {"shape": "hv", "dash": dash, "width": 2, "color": HAND_DESIGNED}
    return go.Scatter(x=x, y=100 * y, mode="lines", line=line, name=esc(name), hoverinfo="skip")


def overlay_traces(overlay: Source, cost: str) -> list[go.Scatter]:
    """An overlaid classics study: its baselines as open diamonds and their front as a dashed line."""
    base = references(overlay.frame)
    base = base[base["role"] == "baseline"]
    if not len(base):
        return []
    fidelity = overlay.meta.get("fidelity", "")
    markers = go.Scatter(
        x=base[cost].astype(float),
        y=100 * base["val_acc"],
        mode="markers+text",
        name=esc(f"hand-designed ({overlay.label})"),
        text=[esc(n) for n in base["name"]],
        textposition="bottom center",
        textfont={"color": HAND_DESIGNED, "size": 10},
        marker={"color": HAND_DESIGNED, "symbol": "diamond-open", "size": 10},
        cliponaxis=False,
        hovertext=[hover(r) for _, r in base.iterrows()],
        hoverinfo="text",
    )
    line = hand_designed_front(overlay.frame, cost, f"hand-designed front ({overlay.label}; {fidelity})", dash="dash")
    return [markers] + ([line] if line is not None else [])


def front_figure(sources: Sequence[Source], cost: str, overlays: Sequence[Source] = ()) -> go.Figure:
    """Validation accuracy against ``cost`` (log axis): trials by group, stopped trials apart, the fronts, the baselines
    and their (hand-designed) front, and the hand-designed fronts of ``overlays`` (finished classics studies)."""
    frame = combined(sources)
    groups = Groups.of(frame)
    fig = go.Figure()
    full = full_candidates(frame)
    for key, part in full.groupby(full[groups.column].fillna(""), sort=True):
        fig.add_scatter(
            x=part[cost].astype(float),
            y=100 * part["val_acc"],
            mode="markers",
            name=esc(key or "?"),
            marker={"color": groups.colors[str(key)], "size": 8, "opacity": 0.85},
            hovertext=[hover(r) for _, r in part.iterrows()],
            hoverinfo="text",
        )
    stopped = frame[(frame["role"] == Role.CANDIDATE) & (frame["state"] == Status.STOPPED) & _has_costs(frame)]
    if len(stopped):
        fig.add_scatter(
            x=stopped[cost].astype(float),
            y=100 * stopped["val_acc"],
            mode="markers",
            name="stopped early (fewer epochs; not on the front)",
            marker={"color": STOPPED, "symbol": "circle-open", "size": 7},
            hovertext=[hover(r) for _, r in stopped.iterrows()],
            hoverinfo="text",
        )
    for source in sources:
        part = full[full["source"] == source.label]
        if len(part):
            x, y = front_steps(part["val_acc"].to_numpy(float), part[cost].to_numpy(float))
            fig.add_scatter(
                x=x,
                y=100 * y,
                mode="lines+markers",  # rings mark the members: a front of one is a ring, not nothing
                marker={"symbol": "circle-open", "size": 13, "color": groups.colors.get(source.label, "#d62728")},
                line={"shape": "hv", "width": 2, "color": groups.colors.get(source.label, "#d62728")},
                name=esc(f"Pareto front ({source.label})" if len(sources) > 1 else "Pareto front"),
                hoverinfo="skip",
            )
    refs = references(frame)
    if len(refs):
        fig.add_scatter(
            x=refs[cost].astype(float),
            y=100 * refs["val_acc"],
            mode="markers+text",
            name="baselines, same recipe" if (refs["role"] == Role.BASELINE).all() else "baselines and runs",
            text=[esc(n) for n in refs["name"]],
            textposition="top center",
            marker={"color": BASELINE, "symbol": "diamond", "size": 11},
            cliponaxis=False,
            hovertext=[hover(r) for _, r in refs.iterrows()],
            hoverinfo="text",
        )
    for source in sources:
        label = "hand-designed front" + (f" ({source.label})" if len(sources) > 1 else "")
        line = hand_designed_front(source.frame, cost, label)
        if line is not None:
            fig.add_trace(line)
    for overlay in overlays:
        fig.add_traces(overlay_traces(overlay, cost))
    everything = combined([*sources, *overlays])
    xs = np.log10(everything.loc[_has_costs(everything), cost].astype(float).to_numpy())
    pad = max(0.12, 0.06 * float(np.ptp(xs))) if xs.size else 0.0  # room for the baselines' labels
    fig.update_layout(
        **LAYOUT,
        title=f"Validation accuracy vs {'MACs' if cost == 'macs' else 'parameters'}",
        xaxis={"type": "log", "title": COST_TITLES[cost], **({"range": [xs.min() - pad, xs.max() + pad]} if xs.size else {})},
        yaxis={"title": "validation accuracy (%)"},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig


@dataclass(frozen=True)
class Reference:
    """The hypervolume's reference point: accuracy ``acc`` and ``cost`` (1.1 x the largest cost of a full trial)."""

    acc: float
    cost: float
    metric: str

    def describe(self) -> str:
        return f"reference point: accuracy {100 * self.acc:.0f}%, {self.metric} {human(self.cost)} (1.1 × the largest)"


def reference(sources: Sequence[Source]) -> Reference | None:
    metric = sources[0].cost
    full = full_candidates(combined(sources))
    if not len(full):
        return None
    return Reference(0.0, 1.1 * float(full[metric].max()), metric)


def progress_figure(sources: Sequence[Source]) -> go.Figure | None:
    """Per study: hypervolume of the full-fidelity front after each trial, and the best accuracy so far."""
    ref = reference(sources)
    if ref is None:
        return None
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(esc(f"hypervolume of the front (accuracy × {ref.metric})"), "best validation accuracy so far"),
    )
    groups = Groups.of(combined(sources))
    for i, source in enumerate(sources):
        part = full_candidates(source.frame).sort_values("number")
        if not len(part) or source.kind != "study":
            continue
        acc, cost = part["val_acc"].to_numpy(float), part[ref.metric].to_numpy(float)
        hv = hypervolume_progress(acc, cost, ref.acc, ref.cost) / (ref.cost * (1.0 - ref.acc))
        color = groups.colors.get(source.label, PALETTE[i % len(PALETTE)])
        sampler = source.meta.get("sampler", "")
        name = esc(f"{source.label} ({sampler})" if sampler else source.label)
        common = {"x": part["number"], "mode": "lines+markers", "line": {"shape": "hv", "color": color}, "legendgroup": name}
        fig.add_scatter(y=hv, name=name, **common, row=1, col=1)
        fig.add_scatter(y=100 * np.maximum.accumulate(acc), name=name, showlegend=False, **common, row=1, col=2)
    fig.update_layout(**LAYOUT, title=esc(f"Search progress; hypervolume {ref.describe()}"))
    fig.update_xaxes(title="trial number")
    fig.update_yaxes(title="fraction of the reference box", row=1, col=1)
    fig.update_yaxes(title="validation accuracy (%)", row=1, col=2)
    return fig


def edf_figure(sources: Sequence[Source]) -> go.Figure | None:
    """Error EDFs per group (family, or study when compared), plain and normalized for MACs (Radosavovic et al. 2019),
    over each study's census set (random samples trained equally: ``Source.census``); its title says which."""
    parts = [s.census for s in sources if s.census is not None and len(s.census)]
    if not parts:
        return None
    full = pd.concat(parts, ignore_index=True)
    full = full[full["macs"].notna()]
    if not len(full):
        return None
    groups = Groups.of(combined(sources))
    log_macs = np.log10(full["macs"].to_numpy(float))
    edges = np.histogram_bin_edges(log_macs, bins=EDF_BINS)
    fig = make_subplots(
        rows=1, cols=2, subplot_titles=("error EDF", f"error EDF normalized for MACs ({EDF_BINS} log-spaced bins)")
    )
    for key, part in full.groupby(full[groups.column].fillna(""), sort=True):
        errors = 100 * part["error"].to_numpy(float)
        name = esc(f"{key or '?'} (n={len(part)})")
        style = {"mode": "lines", "line": {"shape": "hv", "color": groups.colors[str(key)]}, "legendgroup": name}
        x, f = edf(errors)
        fig.add_scatter(x=[x[0], *x], y=[0.0, *f], name=name, **style, row=1, col=1)  # from 0: one model shows as a step
        x, f = normalized_edf(errors, part["macs"].to_numpy(float), bins=edges)
        fig.add_scatter(x=[x[0], *x], y=[0.0, *f], name=name, showlegend=False, **style, row=1, col=2)
    over = "; ".join(f"{s.label}: {s.census_note}" for s in sources if s.census is not None and len(s.census))
    title = f"Design-space statistics: error distribution (n={len(full)})<br><sup>{esc(over)}</sup>"
    fig.update_layout(**{**LAYOUT, "margin": {**LAYOUT["margin"], "t": 90}}, title=title)
    fig.update_xaxes(title="validation error (%)")
    fig.update_yaxes(title="fraction of models with error ≤ x", range=[0, 1.02])
    return fig


def importance_figure(source: Source, top: int = 15) -> go.Figure | None:
    """fANOVA importance of the design-space parameters (largest first, at most ``top``)."""
    if not source.importances:
        return None
    items = sorted(source.importances.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig = go.Figure(
        go.Bar(
            x=[v for _, v in items],
            y=[esc(k) for k, _ in items],
            orientation="h",
            marker={"color": PALETTE[0]},
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        **{**LAYOUT, "height": max(260, 40 + 28 * len(items)), "margin": {"l": 20, "r": 20, "t": 60, "b": 50}},
        title=esc(f"Parameter importance for val_acc: {source.label}"),
        xaxis={"title": esc(source.importance_note)},
        yaxis={"automargin": True},
    )
    return fig


def final_figure(sources: Sequence[Source], cost: str) -> go.Figure | None:
    """Final runs: test accuracy (mean over seeds, std as error bars) against ``cost``, found models vs baselines."""
    parts = [s.final for s in sources if s.final is not None and len(s.final)]
    if not parts:
        return None
    final = pd.concat(parts, ignore_index=True)
    fig = go.Figure()
    styles = {Role.CANDIDATE: ("found (front members)", PALETTE[3], "circle"), Role.BASELINE: ("baselines", BASELINE, "diamond")}
    for role, (label, color, symbol) in styles.items():
        part = final[final["role"] == role]
        if not len(part):
            continue
        text = [
            f"<b>{esc(r.label)}</b> · {esc(r.source)}<br>test {esc(final_estimate(r).text())}"
            f" · {esc(r.recipe)}, {r.epochs} epochs<br>params {int(r.params):,} · MACs {int(r.macs):,}<br>"
            f"digest {esc(r.digest)}"
            for r in part.itertuples()
        ]
        fig.add_scatter(
            x=part[cost].astype(float),
            y=100 * part["test_mean"],
            error_y={"type": "data", "array": 100 * part["test_ci"].astype(float), "visible": True},  # NaN (1 seed): no bar
            mode="markers+text",
            text=[esc(n) for n in part["label"]],
            textposition="top center",
            cliponaxis=False,
            name=label,
            marker={"color": color, "symbol": symbol, "size": 11},
            hovertext=text,
            hoverinfo="text",
        )
    fig.update_layout(
        **LAYOUT,
        title=f"Final runs: test accuracy vs {'MACs' if cost == 'macs' else 'parameters'} (mean, 95% t-interval over seeds)",
        xaxis={"type": "log", "title": COST_TITLES[cost]},
        yaxis={"title": "test accuracy (%)"},
        legend={"orientation": "h", "y": -0.18},
    )
    return fig
