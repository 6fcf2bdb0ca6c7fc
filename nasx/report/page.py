"""One self-contained HTML page (plotly.js inlined, no request leaves it) plus the trial table as CSV and parquet."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go

from nasx.report.collect import ReportError, Source
from nasx.report.diagram import diagrams
from nasx.report.figures import (
    combined,
    edf_figure,
    esc,
    final_estimate,
    final_figure,
    front_figure,
    full_candidates,
    human,
    importance_figure,
    progress_figure,
    references,
)
from nasx.results.noise import single_run, verdict
from nasx.search.record import Role, Status

# Nothing may be fetched: scripts and styles are inline, images are data: URLs (plotly's PNG download).
CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:"

STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;color:#222}
h1{margin:24px 0 4px}h2{margin-top:36px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin:0 0 12px}.headline{background:#f4f8fb;border-left:4px solid #1f77b4;padding:10px 16px}
.headline li{margin:4px 0}.grid{display:grid;grid-template-columns:1fr 1fr;gap:12px}
@media (max-width:1000px){.grid{grid-template-columns:1fr}}
table{border-collapse:collapse;font-size:14px}td,th{padding:4px 10px;border-bottom:1px solid #eee;text-align:left;
vertical-align:top}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px;word-break:break-all}details summary{cursor:pointer;color:#1f77b4}
.note{color:#666;font-style:italic}.diagram{overflow-x:auto;max-width:1000px}
"""

SCRIPT = """
const figs = Array.from(document.querySelectorAll('div.figure'));
Promise.all(figs.map((div) => {
  const spec = JSON.parse(document.getElementById(div.id + '-data').textContent);
  return Plotly.newPlot(div, spec.data, spec.layout, {responsive: true, displaylogo: false});
})).then(() => { document.body.dataset.rendered = String(figs.length); });
"""


def _json_script(fig: go.Figure, ident: str) -> str:
    """The figure as JSON in a non-executed script tag; '<', '>' and '&' escaped so no string can close the tag."""
    text = fig.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<div class="figure" id="{ident}"></div><script type="application/json" id="{ident}-data">{text}</script>'


def _n(row: pd.Series) -> int | None:
    """The test-set size a run row recorded (None: unknown, so no interval is given)."""
    n = row.get("test_images", None)
    return None if n is None or pd.isna(n) else int(n)


def _differences(sources: Sequence[Source]) -> list[str]:
    """What differs between the sources' setups (recipe, fidelity, data, validation split): accuracies measured
    under different setups are not comparable."""
    if len(sources) < 2:
        return []
    out = []
    for key in ("recipe", "fidelity", "data", "validation"):
        if len({json.dumps(s.setup.get(key), sort_keys=True, default=str) for s in sources}) > 1:
            out.append(key)
    return out


def _selection_lines(source: Source) -> list[str]:
    """One source's search results as selection: the best candidate, and each reference against the best candidate
    at no more MACs, with binomial standard errors; "beats" only when the 95% intervals separate."""
    frame = source.frame
    full, refs = full_candidates(frame), references(frame)
    n = source.val_images
    unit = "val images"
    if not len(full):
        return [f"{source.label}: no candidate has finished at full fidelity yet."]
    best = full.loc[full["val_acc"].idxmax()]
    lines = [
        f"{source.label}: selected at search fidelity (validation split, one run each): trial {best['number']}, "
        f"{single_run(best['val_acc'], n, unit).text()} at {human(best['macs'])} MACs, the best of {len(full)} "
        "candidate(s); a maximum over many noisy runs is biased upward."
    ]
    for _, ref in refs.iterrows():
        ref_est = single_run(ref["val_acc"], n, unit)
        what = f"{ref['name']} ({ref_est.text()} at {human(ref['macs'])} MACs)"
        cheaper = full[full["macs"] <= ref["macs"]]
        if not len(cheaper):
            lines.append(f"No candidate costs no more MACs than {what}.")
            continue
        top = cheaper.loc[cheaper["val_acc"].idxmax()]
        est = single_run(top["val_acc"], n, unit)
        say = verdict(est, ref_est)
        lines.append(
            f"At no more MACs than {what}: the best, trial {top['number']} ({est.text()}), {say} it"
            + ("" if say == "beats" else " (the 95% intervals overlap or are unknown)")
            + "."
        )
    return lines


def headline(sources: Sequence[Source]) -> list[str]:
    """At a glance: the selection each study made at search fidelity, set against its baselines with the noise of a
    single run; then the final runs, which alone confirm. Sources trained differently are not compared."""
    differ = _differences(sources)
    lines: list[str] = []
    if differ:
        lines.append(
            f"The sources differ in {', '.join(differ)}: their accuracies are not comparable, and no source is said to "
            "beat another."
        )
    for source in sources:
        if source.kind == "study":
            lines += _selection_lines(source)
            continue
        r = source.frame.iloc[0]
        test = "" if pd.isna(r.get("test_acc", None)) else f"; test {single_run(r['test_acc'], _n(r), 'test images').text()}"
        lines.append(f"Run {source.label}: val {single_run(r['val_acc'], source.val_images).text()}{test} (one seed).")
    lines.append(
        "Search accuracies above are on the validation split at the study's search fidelity (± is 1.96 binomial SE); "
        "they are a selection, not a confirmation. The test set is not used in search."
    )
    if any("proxy network" in str(s.meta.get("fidelity", "")) for s in sources):
        lines.append(
            "They were measured on smaller proxy networks (see What was run); params and MACs are the evaluation networks'."
        )
    lines += final_headline(sources)
    return lines


def hand_designed_headline(sources: Sequence[Source], overlays: Sequence[Source] = ()) -> list[str]:
    """One line per study with finished baselines (and per overlay): its hand-designed front, cheapest first."""
    from nasx.results import pareto_front

    lines = []
    for source in [*sources, *overlays]:
        base = references(source.frame)
        base = base[base["role"] == "baseline"]
        if not len(base):
            continue
        front = base[pareto_front(base["val_acc"].to_numpy(float), base["macs"].to_numpy(float))].sort_values("macs")
        each = ", ".join(f"{r.name} {100 * r.val_acc:.2f}% at {human(r.macs)} MACs" for r in front.itertuples())
        where = "overlaid from " if any(source is o for o in overlays) else ""
        lines.append(f"Hand-designed front ({where}{source.label}, validation accuracy vs MACs): {each}.")
    return lines


def final_headline(sources: Sequence[Source]) -> list[str]:
    """The final runs in one line per model (test mean with a 95% t-interval over seeds; none for one seed), cheapest
    first, and each found model against each baseline of the same setup: "beats" only when the intervals separate."""
    parts = [s.final for s in sources if s.final is not None and len(s.final)]
    if not parts:
        return []
    final = pd.concat(parts, ignore_index=True).sort_values("macs")
    tests = {int(x) for x in final["test_images"].dropna()} if "test_images" in final else set()
    each = "; ".join(f"{r.label} {final_estimate(r).text()} at {human(r.macs)} MACs" for r in final.itertuples())
    size = f", n={tests.pop():,} test images per run" if len(tests) == 1 else ""
    lines = [f"Final runs (official test set{size}; mean with 95% t-interval over seeds): {each}."]
    base = final[final["role"] == Role.BASELINE]
    found = final[final["role"] == Role.CANDIDATE]
    for b in base.itertuples():
        for f in found.itertuples():
            if (f.data_sha256, f.epochs, f.recipe) != (b.data_sha256, b.epochs, b.recipe):
                continue  # another setup: not comparable
            say = verdict(final_estimate(f), final_estimate(b))
            tail = "." if say == "beats" else " (the 95% intervals overlap, or one seed gives none)."
            lines.append(f"On the test set (retrained, seeded): {f.label} {say} {b.label}{tail}")
    return lines


def _diagram_cell(genotype: dict | None) -> str:
    if not genotype:
        return ""
    from nasx.errors import NasxError
    from nasx.space.genotype import Network

    try:
        net = Network.from_dict(genotype)
    except NasxError:
        return '<span class="note">genotype does not validate</span>'
    parts = "".join(f"<p>{esc(caption)}</p>{svg}" for caption, svg in diagrams(net))
    return f'<details><summary>diagram</summary><div class="diagram">{parts}</div></details>'


def top_models(sources: Sequence[Source]) -> str:
    """The front members (MACs front) and the baselines side by side, cheapest first."""
    multi = len(sources) > 1
    rows = []
    for source in sources:
        frame = source.frame
        picked = frame[(frame["on_front"] & (frame["state"] == Status.COMPLETE)) | frame.index.isin(references(frame).index)]
        rows += [(source, r) for _, r in picked.iterrows()]
    rows.sort(key=lambda sr: float(sr[1]["macs"]))
    head = ["source"] * multi + ["model", "family", "params", "MACs", "val acc (±1.96 SE)", "epochs", "digest", "genotype", ""]
    num = {"params", "MACs", "val acc (±1.96 SE)", "epochs"}
    out = ["<table><thead><tr>", *(f'<th class="{"num" if h in num else ""}">{h}</th>' for h in head), "</tr></thead><tbody>"]
    for source, r in rows:
        model = f"trial {r['number']} (front)" if r["role"] == Role.CANDIDATE else f"{r['name']} ({r['role']})"
        est = None if pd.isna(r.get("test_acc", None)) else single_run(r["test_acc"], _n(r), "test images")
        test = "" if est is None else f"<br>test {esc(est.text())}"
        cells = [esc(source.label)] * multi + [
            f"<b>{esc(model)}</b>",
            esc(r["family"] or ""),
            f"{int(r['params']):,}",
            f"{int(r['macs']):,}",
            f"{esc(single_run(r['val_acc'], source.val_images).text())}{test}",
            str(r["epochs"]),
            f"<code>{esc(r['digest'] or '')}</code>",
            f"<details><summary>string</summary><code>{esc(r['string'] or '')}</code></details>",
            _diagram_cell(source.genotypes.get(int(r["number"]))),
        ]
        cls = [""] * multi + ["", "", "num", "num", "num", "num", "", "", ""]
        out.append("<tr>" + "".join(f'<td class="{c}">{v}</td>' for c, v in zip(cls, cells, strict=True)) + "</tr>")
    out.append("</tbody></table>")
    if not rows:
        return '<p class="note">No front member or baseline has finished yet.</p>'
    return "".join(out)


def _trust_table(table: list) -> str:
    head = ["proxy", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "against the parameter count"]
    out = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for t in table:
        if t.proxy == "params":
            verdict = "the reference"
        else:
            verdict = {
                True: "beats it",
                False: "<b>does not beat the parameter count</b>",
                None: "no verdict (fewer than 5 networks, or a constant score)",
            }[t.beats_reference]
        cells = [f"<code>{esc(t.proxy)}</code>", str(t.n)]
        for c in (t.kendall, t.spearman):
            cells.append("—" if c.value != c.value else f"{c.value:+.2f} [{c.low:+.2f}, {c.high:+.2f}]")
        cells.append(verdict)
        out.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def proxy_trust(sources: Sequence[Source]) -> str:
    """Each study's zero-cost proxies against trained accuracy (search fidelity; final test accuracy when retrained)."""
    from nasx.results.correlation import study_trust

    parts = []
    for source in (s for s in sources if s.kind == "study"):
        tables = study_trust(source.frame, source.final)
        if not tables:
            continue
        parts.append(f"<h3>{esc(source.label)}</h3><p>Against validation accuracy at the search fidelity:</p>")
        parts.append(_trust_table(tables["search"]))
        if "final" in tables:
            parts.append("<p>Against the final test accuracy after retraining (mean over seeds):</p>")
            parts.append(_trust_table(tables["final"]))
    if not parts:
        return '<p class="note">No trial was scored by a zero-cost proxy (add a <code>proxies:</code> section to the study).</p>'
    return "".join(parts)


def what_was_run(source: Source) -> str:
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in source.meta.items())
    return f"<h3>{esc(source.kind)} {esc(source.label)}</h3><table>{rows}</table>"


def render(sources: Sequence[Source], title: str, files: Sequence[str] = (), overlays: Sequence[Source] = ()) -> str:
    """The whole page as a string; ``overlays``: finished classics studies whose hand-designed fronts the fronts draw."""
    import plotly.offline

    if not sources:
        raise ReportError("nothing to report: give at least one study or run")
    figures: list[str] = []

    def figure(fig: go.Figure | None, missing: str) -> str:
        if fig is None:
            return f'<p class="note">{esc(missing)}</p>'
        figures.append(_json_script(fig, f"fig-{len(figures)}"))
        return figures[-1]

    fronts = figure(front_figure(sources, "macs", overlays), "") + figure(front_figure(sources, "params", overlays), "")
    finals = ""
    if any(s.final is not None and len(s.final) for s in sources):
        finals = (
            '<h2>Final runs</h2><p class="sub">The front members and baselines retrained by <code>nasx retrain</code> at '
            "full fidelity with several seeds and measured once on the official test set.</p>"
            f'<div class="grid">{figure(final_figure(sources, "macs"), "")}{figure(final_figure(sources, "params"), "")}</div>'
        )
    progress = figure(progress_figure(sources), "No full-fidelity trial yet: no progress to draw.")
    notes = " ".join(f"{s.label}: {s.census_note}." for s in sources if s.kind == "study" and s.census_note)
    edfs = figure(edf_figure(sources), f"No error distribution to draw. {notes}")
    studies = [s for s in sources if s.kind == "study"]
    importance = "".join(
        figure(importance_figure(s), f"Parameter importance of {s.label}: {s.importance_note}.") for s in studies
    )
    links = " · ".join(f'<a href="{esc(f)}">{esc(f)}</a>' for f in files)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    items = "".join(f"<li>{esc(line)}</li>" for line in headline(sources) + hand_designed_headline(sources, overlays))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>nasx report: {esc(title)}</title><style>{STYLE}</style>
<script>{plotly.offline.get_plotlyjs()}</script></head>
<body>
<h1>nasx report: {esc(title)}</h1>
<p class="sub">{esc(", ".join(f"{s.kind} {s.label}" for s in sources))} · generated {stamp}{" · " + links if links else ""}</p>
<ul class="headline">{items}</ul>
<h2>1. Pareto fronts</h2>
<p class="sub">Every trial trained to full fidelity is a point; the step line is the non-dominated set. Trials stopped
early are hollow grey and never join a front. Diamonds are baselines trained with the same recipe; the dotted line
is their front, the hand-designed one (dashed, with open diamonds: overlaid from a classics study).</p>
<div class="grid">{fronts}</div>{finals}
<h2>2. Progress</h2>{progress}
<h2>3. Design-space statistics</h2>{edfs}{importance}
<h2>4. Top models</h2>{top_models(sources)}
<h2>5. Zero-cost proxy trust</h2>
<p class="sub">Rank correlation of each proxy, scored on the untrained network, with the accuracy the network reached
(trials trained to the study's fidelity, baselines included; duplicates and early-stopped trials left out). Intervals
are 95% Fisher-z intervals. A proxy is worth its cost only where it beats the plain parameter count: a Kendall τ
above the parameter count's and above zero.</p>
{proxy_trust(sources)}
<h2>6. What was run</h2>{"".join(what_was_run(s) for s in sources)}
<script>{SCRIPT}</script>
</body></html>
"""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    csv: Path
    parquet: Path
    figures: int


def table(sources: Sequence[Source]) -> pd.DataFrame:
    """The trial table of every source, ``curve`` as a JSON list so CSV and parquet hold the same values."""
    frame = combined(sources).copy()
    frame["curve"] = [json.dumps(c) for c in frame["curve"]]
    if "proxies" in frame.columns:  # name -> score, varying by study: JSON, like the curve
        frame["proxies"] = [json.dumps(p if isinstance(p, dict) else {}) for p in frame["proxies"]]
    for col in ("params", "macs", "duplicate_of"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    return frame


def default_path(title: str) -> Path:
    """Where a report titled ``title`` goes unless told: ``reports/TITLE.html``, the title made a safe file name."""
    return Path("reports") / (re.sub(r"[^A-Za-z0-9_.-]+", "_", title) + ".html")


def write_report(sources: Sequence[Source], out: Path, title: str, overlays: Sequence[Source] = ()) -> ReportFiles:
    """Write ``out`` (.html) and the trial table beside it (.csv, .parquet), each atomically; ``overlays``: see :func:`render`."""
    from nasx.yamlfiles import atomic_write

    out.parent.mkdir(parents=True, exist_ok=True)
    csv, parquet = out.with_suffix(".csv"), out.with_suffix(".parquet")
    frame = table(sources)
    atomic_write(csv, lambda p: frame.to_csv(p, index=False))
    atomic_write(parquet, lambda p: frame.to_parquet(p, index=False))
    text = render(sources, title, files=[csv.name, parquet.name], overlays=overlays)
    atomic_write(out, lambda p: p.write_text(text, encoding="utf-8"))
    return ReportFiles(out, csv, parquet, text.count('class="figure"'))
