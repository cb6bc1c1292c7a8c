"""The API reference page, rendered from the app's own OpenAPI document: operations by tag, their parameters,
request and response bodies, the schemas they use, and the problem types errors are answered with."""

from __future__ import annotations

import re
from html import escape
from typing import Any

from cloud.problems import PROBLEM_TYPES

_METHODS = ("get", "post", "put", "patch", "delete")
_LITERAL = re.compile(r"``(.+?)``")


def _prose(text: str) -> str:
    """Escaped text with ``literal`` shown as code (docstrings are written that way)."""
    return _LITERAL.sub(r"<code>\1</code>", escape(text))


def _anchor(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: dict[str, Any]) -> str:
    """A schema's type in a few words, schema names as links to their section (HTML)."""
    if "$ref" in schema:
        name = _ref_name(schema["$ref"])
        return f'<a href="#schema-{_anchor(name)}">{escape(name)}</a>'
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return " or ".join(type_of(s) for s in schema[key])
    kind = schema.get("type")
    if kind == "array":
        return f"list of {type_of(schema.get('items', {}))}"
    if "enum" in schema:
        return " | ".join(escape(repr(v)) for v in schema["enum"])
    if "const" in schema:
        return escape(repr(schema["const"]))
    return escape(str(kind or "any"))


def _limits(schema: dict[str, Any]) -> str:
    found = [
        f"{label} {schema[key]}"
        for key, label in (
            ("minimum", "≥"),
            ("exclusiveMinimum", ">"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
            ("pattern", "matches"),
            ("default", "default"),
        )
        if key in schema
    ]
    return escape(", ".join(found))


def _body_schema(content: dict[str, Any]) -> str:
    parts = []
    for media, spec in content.items():
        schema = spec.get("schema", {})
        parts.append(f"<code>{escape(media)}</code>: {type_of(schema) if schema else 'any'}")
    return "; ".join(parts)


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    op_id = op.get("operationId") or f"{method}-{path}"
    out = [
        f'<section class="operation" id="op-{_anchor(op_id)}" aria-labelledby="h-{_anchor(op_id)}">',
        f'<h3 id="h-{_anchor(op_id)}"><span class="method method-{method}">{method.upper()}</span> '
        f"<code>{escape(path)}</code></h3>",
    ]
    if op.get("summary"):
        out.append(f"<p><strong>{escape(op['summary'])}</strong></p>")
    if op.get("description"):
        out.extend(f"<p>{_prose(par)}</p>" for par in op["description"].split("\n\n") if par.strip())
    params = op.get("parameters", [])
    if params:
        out.append('<div class="scroll"><table><caption>Parameters</caption>')
        out.append(
            '<tr><th scope="col">Name</th><th scope="col">In</th><th scope="col">Type</th>'
            '<th scope="col">Required</th><th scope="col">Description</th></tr>'
        )
        for p in params:
            schema = p.get("schema", {})
            out.append(
                f"<tr><td><code>{escape(p.get('name', ''))}</code></td><td>{escape(p.get('in', ''))}</td>"
                f"<td>{type_of(schema)} {_limits(schema)}</td><td>{'yes' if p.get('required') else 'no'}</td>"
                f"<td>{escape(p.get('description', schema.get('description', '')))}</td></tr>"
            )
        out.append("</table></div>")
    body = op.get("requestBody")
    if body:
        out.append(
            f"<p>Request body{' (required)' if body.get('required') else ''}: "
            f"{_body_schema(body.get('content', {}))}</p>"
        )
    responses = op.get("responses", {})
    if responses:
        out.append('<dl class="responses">')
        for status, spec in responses.items():
            content = spec.get("content")
            shape = f" — {_body_schema(content)}" if content else ""
            out.append(f"<dt>{escape(str(status))}</dt><dd>{escape(spec.get('description', ''))}{shape}</dd>")
        out.append("</dl>")
    out.append("</section>")
    return "".join(out)


def _schema_section(name: str, schema: dict[str, Any]) -> str:
    out = [f'<section class="schema" id="schema-{_anchor(name)}"><h3>{escape(name)}</h3>']
    if schema.get("description"):
        out.append(f"<p>{escape(schema['description'])}</p>")
    props = schema.get("properties", {})
    if props:
        required = set(schema.get("required", []))
        out.append(
            '<div class="scroll"><table><tr><th scope="col">Field</th><th scope="col">Type</th>'
            '<th scope="col">Required</th><th scope="col">Description</th></tr>'
        )
        for field, spec in props.items():
            out.append(
                f"<tr><td><code>{escape(field)}</code></td><td>{type_of(spec)} {_limits(spec)}</td>"
                f"<td>{'yes' if field in required else 'no'}</td><td>{escape(spec.get('description', ''))}</td></tr>"
            )
        out.append("</table></div>")
    else:
        out.append(f"<p>{type_of(schema)}</p>")
    out.append("</section>")
    return "".join(out)


def render_reference(doc: dict[str, Any]) -> str:
    """The reference's HTML body for an OpenAPI document."""
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in doc.get("paths", {}).items():
        for method in _METHODS:
            op = item.get(method)
            if op is not None:
                tag = (op.get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((path, method, op))
    tag_text = {t["name"]: t.get("description", "") for t in doc.get("tags", [])}
    tags = sorted(by_tag)
    out = [
        f"<h1>API reference</h1><p>{escape(doc.get('info', {}).get('description', ''))} "
        'This page is drawn from the API\'s own OpenAPI document (<a href="/openapi.json">/openapi.json</a>).</p>'
    ]
    out.append('<nav aria-label="Groups of operations"><ul class="toc">')
    out.extend(f'<li><a href="#tag-{_anchor(t)}">{escape(t)}</a></li>' for t in tags)
    out.append('<li><a href="#schemas">Schemas</a></li><li><a href="#problems">Problem types</a></li></ul></nav>')
    for tag in tags:
        out.append(f'<section id="tag-{_anchor(tag)}"><h2>{escape(tag)}</h2>')
        if tag_text.get(tag):
            out.append(f"<p>{escape(tag_text[tag])}</p>")
        out.extend(_operation(path, method, op) for path, method, op in by_tag[tag])
        out.append("</section>")
    out.append('<section id="schemas"><h2>Schemas</h2>')
    for name, schema in sorted(doc.get("components", {}).get("schemas", {}).items()):
        out.append(_schema_section(name, schema))
    out.append("</section>")
    out.append(
        '<section id="problems"><h2>Problem types</h2><p>Every error is answered as RFC 9457 problem '
        "details (<code>application/problem+json</code>) whose <code>type</code> is one of these.</p>"
    )
    out.append(
        '<div class="scroll"><table><tr><th scope="col">Type</th><th scope="col">Status</th>'
        '<th scope="col">Title</th><th scope="col">When</th></tr>'
    )
    for kind in PROBLEM_TYPES.values():
        out.append(
            f"<tr><td><code>{escape(kind.uri)}</code></td><td>{kind.status}</td><td>{escape(kind.title)}</td>"
            f"<td>{escape(kind.when)}</td></tr>"
        )
    out.append("</table></div></section>")
    return "".join(out)
