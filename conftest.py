"""Collection of the package's doctests: the web app's modules import FastAPI, an optional extra
(``pip install "kvschema[serve]"``); without it their doctests are not collected (and
``tests/test_serve_*.py`` skip, naming the extra)."""

from importlib.util import find_spec

collect_ignore = []
if find_spec("fastapi") is None or find_spec("uvicorn") is None:
    collect_ignore += ["kvschema/serve/app.py"]
