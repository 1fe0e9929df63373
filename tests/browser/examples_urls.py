"""
The demo site's URLs plus /examples/: the pages that run docs/examples (the headless client's
plain JavaScript, presence and React examples) and React 18 from tests/browser/node_modules. Served by
the site itself, so that the pages are of its origin and address (Chromium refuses a socket to
127.0.0.1 from a page Playwright made up) and the examples' fetches carry its cookie.
"""

from pathlib import Path

from django.http import Http404, HttpResponse
from django.utils.html import escape
from django.urls import path, re_path
from django.views.static import serve

from project.urls import urlpatterns as site_urlpatterns

BASE_DIR = Path(__file__).resolve().parents[2]
EXAMPLES = BASE_DIR / "docs" / "examples"
NODE_MODULES = Path(__file__).resolve().parent / "node_modules"
# React 18's UMD builds, which define window.React and window.ReactDOM.
REACT = NODE_MODULES / "react" / "umd" / "react.production.min.js"
REACT_DOM = NODE_MODULES / "react-dom" / "umd" / "react-dom.production.min.js"

PAGES = {
    "plain": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The plain client</title></head>
<body><p>State: <span id="state">disconnected</span> · Unread: <span id="unread">0</span></p>
<ul id="events"></ul>
<script type="module" src="/examples/plain.js"></script></body></html>""",
    "react": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>The React hook</title>
<script src="/examples/vendor/react.js"></script>
<script src="/examples/vendor/react-dom.js"></script>
<script type="importmap">{"imports": {"react": "/examples/vendor/react.mjs", "react-dom/client": "/examples/vendor/react-dom-client.mjs"}}</script>
</head><body><div id="app"></div>
<script type="module" src="/examples/react-bell.js"></script></body></html>""",
    # {topic}: the page's ?topic=, the object it shows.
    "presence": """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Who else is here</title></head>
<body data-topic="{topic}"><main><p id="others"></p>
<form><label>Note <input name="note"></label></form></main>
<script type="module" src="/examples/presence.js"></script></body></html>""",
}
# Modules under the names the examples import, over the UMD builds' globals.
MODULES = {
    "react": "const React = window.React;\nexport default React;\n"
    "export const { createElement, useEffect, useState, useRef, useSyncExternalStore } = React;\n",
    "react-dom-client": "export const { createRoot, hydrateRoot } = window.ReactDOM;\n",
}
SCRIPTS = {"react": REACT, "react-dom": REACT_DOM}


def page(request, name):
    if name not in PAGES:
        raise Http404(name)
    return HttpResponse(PAGES[name].replace("{topic}", escape(request.GET.get("topic", ""))))


def module(request, name):
    if name not in MODULES:
        raise Http404(name)
    return HttpResponse(MODULES[name], content_type="text/javascript")


def script(request, name):
    if name not in SCRIPTS:
        raise Http404(name)
    return serve(request, SCRIPTS[name].name, document_root=SCRIPTS[name].parent)


urlpatterns = site_urlpatterns + [
    path("examples/<str:name>.html", page),
    path("examples/vendor/<str:name>.mjs", module),
    path("examples/vendor/<str:name>.js", script),
    re_path(r"^examples/(?P<path>[\w-]+\.js)$", serve, {"document_root": EXAMPLES}),
]
