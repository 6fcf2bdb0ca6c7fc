"""``nasx zoo``, ``nasx describe``, ``nasx space``: the classic networks and the design spaces."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from nasx.cli.common import NetworkArgument, app, err, friendly, out


def _gmacs(macs: int) -> str:
    g = macs / 1e9
    return f"{g:.4f}" if g >= 1 else f"{g:.4g}"


@app.command()
@friendly
def zoo(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list instead of a table.")] = False,
) -> None:
    """List the classic networks with their params and MACs (measured, batch 1, stated input)."""
    from nasx import zoo as registry
    from nasx.models.complexity import complexity

    rows = []
    for name in registry.names():
        net = registry.get(name)
        c = complexity(net)
        rows.append(
            {
                "name": name,
                "family": registry.family(net),
                "input_size": list(net.input.shape),
                "classes": net.input.classes,
                "params": c.params,
                "macs": c.macs,
                "digest": net.digest,
                "reference": net.reference,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="nasx zoo (params: all, classifier included; MACs: conv + linear, batch 1)")
    for col, justify in [
        ("name", "left"),
        ("family", "left"),
        ("input", "left"),
        ("params", "right"),
        ("GMACs", "right"),
        ("reference", "left"),
    ]:
        table.add_column(col, justify=justify, no_wrap=col != "reference")  # type: ignore[arg-type]
    for r in rows:
        c, h, w = r["input_size"]
        ref = r["reference"].split(" (")[0].split(",")[0].split(":")[0]
        table.add_row(r["name"], r["family"], f"{c}x{h}x{w}", f"{r['params']:,}", _gmacs(r["macs"]), ref)
    out.print(table)


@app.command()
@friendly
def describe(
    network: NetworkArgument,
    batch: Annotated[int, typer.Option(min=1, help="Batch size for the activation-memory estimate.")] = 128,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Per-stage breakdown of one network: output shape, params, MACs; plus its string form and digest."""
    from nasx import zoo as registry
    from nasx.models.complexity import activation_memory, collapse_warnings, complexity
    from nasx.space.genotype import cell_lines

    net = registry.resolve(network)
    c = complexity(net)
    act = activation_memory(net, batch=batch)
    for line in collapse_warnings(net):
        err.print(f"[yellow]warning:[/] {escape(line)}", highlight=False)
    if as_json:
        doc = {
            "name": net.name,
            "family": registry.family(net),
            "input_size": list(net.input.shape),
            "params": c.params,
            "macs": c.macs,
            "digest": net.digest,
            "string": net.to_string(),
            "cells": cell_lines(net),
            "activation_bytes": act,
            "activation_batch": batch,
            "modules": [{"where": w, "out_shape": list(sh), "summary": t} for w, sh, t in registry.module_lines(net)],
            "parts": [
                {"name": p.name, "blocks": p.blocks, "out_shape": list(p.out_shape), "params": p.params, "macs": p.macs}
                for p in c.parts
            ],
        }
        print(json.dumps(doc, indent=2))
        return
    title = escape(f"{net.name or network}  [{registry.family(net)}]  input {c.input_shape}")
    table = Table(title=title)
    for col, justify in [
        ("part", "left"),
        ("blocks", "right"),
        ("output", "left"),
        ("params", "right"),
        ("MACs", "right"),
        ("% MACs", "right"),
    ]:
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for p in c.parts:
        shape = "x".join(map(str, p.out_shape))
        share = 100 * p.macs / c.macs if c.macs else 0.0
        table.add_row(p.name, str(p.blocks), shape, f"{p.params:,}", f"{p.macs:,}", f"{share:.1f}")
    table.add_section()
    table.add_row("total", "", "", f"{c.params:,}", f"{c.macs:,}", "100.0")
    out.print(table)
    modules = registry.module_lines(net)
    if modules:
        out.print("modules (branches |, steps >, forks [a, b]):")
    for where, shape, text in modules:
        out.print(f"  {where:<11} {shape!s:<12} {text}", soft_wrap=True, highlight=False, markup=False)
    out.print(f"GMACs {c.macs / 1e9:.4f}   GFLOPs {c.flops / 1e9:.4f}   digest {net.digest}")
    out.print(f"activation memory (training forward, fp32, batch {batch}): ~{act / 2**20:,.1f} MiB")
    out.print(f"string: {net.to_string()}", soft_wrap=True, highlight=False, markup=False)
    for line in cell_lines(net):
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    if net.reference:
        out.print(f"reference: {net.reference}", soft_wrap=True, highlight=False, markup=False)


@app.command()
@friendly
def space(
    name: Annotated[
        str | None, typer.Argument(help="A shipped design space (see `nasx space`) or the path of a design-space YAML file.")
    ] = None,
    params: Annotated[bool, typer.Option("--params", help="List every parameter with its distribution and condition.")] = False,
) -> None:
    """A design space's size (points), parameter count and the zoo networks it contains; without NAME, every shipped space."""
    from nasx.space.design import load_space, space_names

    if name is None:
        table = Table(title="nasx design spaces (points: parameter assignments)")
        for col in ("name", "points", "parameters", "contains"):
            table.add_column(col, justify="right" if col in ("points", "parameters") else "left")
        for n in space_names():
            sp = load_space(n)
            table.add_row(n, str(sp.size()), str(len(sp.params())), ", ".join(sp.members))
        out.print(table)
        return
    sp = load_space(name)
    text = sp.describe()
    lines = text.splitlines() if params else [line for line in text.splitlines() if not line.startswith("  ")]
    for line in lines:
        out.print(line, soft_wrap=True, highlight=False, markup=False)
    if sp.description:
        out.print(sp.description, soft_wrap=True, highlight=False, markup=False)
    if not params:
        out.print("(--params lists every parameter)", highlight=False, markup=False)
