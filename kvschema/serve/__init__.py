"""``kvschema serve``: a capacity planner in the browser and a JSON API, on 127.0.0.1.

Install the extra (``pip install ".[serve]"``) and run ``kvschema serve``.  Modules:
``schemas`` (requests and answers), ``bundled`` (example configs shipped as package data),
``command`` (the command line that reproduces an answer), ``service`` (what each endpoint
computes; no web framework), ``guard`` (limits, content types and security headers, before the
framework), ``app`` (the FastAPI application) and ``runner`` (uvicorn).  ``import kvschema``
never imports FastAPI: only ``app`` and ``runner`` do.
"""
