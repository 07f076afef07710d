"""The API's own description: /openapi.json and a small self-contained /docs page."""

from __future__ import annotations

from aiohttp import web

from ..appkeys import OPENAPI

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Toombos Edge API</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2rem auto;max-width:110rem;padding:0 1rem}
code{background:#f3f3f3;padding:0 .3em}
td{padding:.2rem .6rem;border-bottom:1px solid #eee;vertical-align:top}</style>
</head><body><h1>Toombos Edge API</h1>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a>. Send
<code>Authorization: Bearer &lt;key&gt;</code> on every route that names a role.</p>
<table id="routes"><tr><th>method</th><th>path</th><th>role</th><th>summary</th>
<th>parameters</th><th>body</th><th>replies</th></tr></table>
<script>
const name = (schema) => schema && schema.$ref ? schema.$ref.split('/').pop() : '';
const bodyOf = (op) => Object.entries((op.requestBody || {}).content || {})
  .map(([media, c]) => `${media} ${name(c.schema)}`.trim()).join(', ');
const repliesOf = (op) => Object.entries(op.responses)
  .map(([status, r]) => `${status} ${name(((r.content || {})['application/json'] || {}).schema)}`
  .trim()).join(', ');
fetch('/openapi.json').then(r => r.json()).then(spec => {
  const table = document.getElementById('routes');
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const row = table.insertRow();
      const params = op.parameters.map(p => p.required ? p.name : p.name + '?').join(', ');
      for (const text of [method.toUpperCase(), path, op['x-role'] || 'public', op.summary,
                          params, bodyOf(op), repliesOf(op)]) {
        row.insertCell().textContent = text;
      }
    }
  }
});
</script></body></html>
"""


async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI 3.1 document of every route."""
    return web.Response(body=request.app[OPENAPI].body, content_type="application/json")


async def docs_page(request: web.Request) -> web.Response:
    """A readable list of the routes, from /openapi.json."""
    return web.Response(text=_PAGE, content_type="text/html")
