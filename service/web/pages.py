"""The dashboard's Jinja2 environment: templates in service/web/templates/, autoescaped, strict.

Every page (home, job, sign-in, error, review, dataset, diff, the self-contained report) is a
template extending base.html. Every value a template prints is escaped unless it is `Markup` (the
style sheet, HTML rendered by another template); data for the pages' scripts goes in a
`<script type="application/json">` via `tojson` (which escapes <, >, & and ' too), never spliced
into code, and the scripts themselves are .js files of templates/, included as they are.
"""

from functools import lru_cache

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

_BASE_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 16px;color:#222}
header{display:flex;gap:16px;align-items:baseline;border-bottom:1px solid #ddd;margin-bottom:12px}
header a{color:#333;text-decoration:none;font-weight:600}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ddd;padding:3px 8px;text-align:left}
th{background:#f4f4f4}.json{font-size:12px;color:#777}.err{color:#b00}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px}
.card{border:1px solid #ddd;border-radius:4px;padding:6px;font-size:12px}.card img{image-rendering:pixelated}
.flag{border-color:#d33}.btn{display:inline-block;padding:3px 10px;border:1px solid #888;border-radius:3px;
margin:2px;text-decoration:none;color:#222;background:#f8f8f8}img.plot{max-width:100%}
progress{width:320px}header form.who{margin-left:auto}form.start input[type=number]{width:5em}
"""

_REVIEW_CSS = """
.card{position:relative;outline:none}.card:focus,.card:focus-within{box-shadow:0 0 0 3px #3b6fd8}
.card .decision{display:inline-block;border-radius:3px;padding:0 5px;margin:2px 0;background:#eee;color:#555}
.card.d-relabel{background:#eef4ff}.card.d-relabel .decision{background:#3b6fd8;color:#fff}
.card.d-keep{background:#effaf1}.card.d-keep .decision{background:#2e8540;color:#fff}
.card.d-exclude{background:#f4f4f4;color:#888}.card.d-exclude .decision{background:#666;color:#fff}
.card.d-exclude img{opacity:.35}.card.busy{opacity:.6}
.card .actions{margin-top:4px;display:grid;grid-template-columns:repeat(3,1fr);gap:3px}
.card .actions button,.card .actions select,.card .actions input{font-size:11px;padding:1px 4px;min-width:0}
.card .actions .wide{grid-column:1/-1}.card .features{font-family:ui-monospace,monospace;font-size:11px}
form.filters{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:8px 0;padding:6px 8px;
background:#f7f7f7;border:1px solid #e2e2e2;border-radius:4px}
.pairs a,.views a{margin-right:8px}.pairs a.on,.views a.on,.pages a.on{font-weight:700;color:#222;text-decoration:none}
.pages{margin:8px 0}.pages a,.pages span{display:inline-block;min-width:22px;text-align:center;margin-right:2px}
.toolbar{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:8px 0;padding:6px 0;position:sticky;top:0;
z-index:10;background:#fff;border-bottom:1px solid #eee}
#status{font-weight:600;color:#2e8540}#status.err{color:#b00}kbd{border:1px solid #bbb;border-radius:3px;padding:0 4px;
background:#fafafa;font-size:11px}.keys{font-size:12px;color:#555}.num{text-align:right}
.panel{border:1px solid #ddd;border-radius:4px;padding:6px 12px;margin:10px 0;background:#fbfbfb}
"""
CSS = _BASE_CSS + _REVIEW_CSS  # every page's one inline style sheet


@lru_cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("service.web", "templates"), autoescape=select_autoescape(["html"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.globals["css"] = Markup(CSS)
    env.filters["percent"] = percent
    return env


def percent(share: float) -> str:
    """0.1234 -> '12.3%' (Python's format, which Jinja's printf-style `format` filter lacks)."""
    return f"{share:.1%}"


def render(template: str, **context: object) -> str:
    """A template of service/web/templates/ with `context` (title, json_links and user for base.html)."""
    context.setdefault("json_links", ())
    context.setdefault("user", None)
    return environment().get_template(template).render(**context)


def render_fragment(template: str, **context: object) -> Markup:
    """A template rendered as a piece of another page (the job page's curation panel): `Markup`, so
    the page that prints it does not escape its HTML a second time (it was escaped when rendered)."""
    return Markup(environment().get_template(template).render(**context))
