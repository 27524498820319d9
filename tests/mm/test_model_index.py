"""docs/model.md's index from kernel function names to Python names is complete.

Every function, method or class of ``emulator.mm`` whose docstring starts with the project's
form "Models FILE: name" must have its row ``| `name` | FILE | `python.name` |`` in the index.
Run this file as a script to print the rows:
``python3 dev.py python tests/mm/test_model_index.py``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import emulator.mm

_MODELS = re.compile(
    r"^Models ((?:mm|include|lib|kernel|drivers)/[\w/.-]+\.[ch]): "
    r"((?:struct )?\w+(?:\s*(?:\+|->|/)\s*\w+)*)"
)
DOC = Path(__file__).resolve().parents[2] / "docs" / "model.md"


def modelled() -> list[tuple[str, str, str]]:
    """``(kernel name, kernel file, python name)`` for every "Models FILE: name" docstring."""
    rows: set[tuple[str, str, str]] = set()
    for info in pkgutil.walk_packages(emulator.mm.__path__, "emulator.mm."):
        mod = importlib.import_module(info.name)
        objs: list[tuple[str, object]] = []
        for name, obj in vars(mod).items():
            if getattr(obj, "__module__", None) != mod.__name__:
                continue
            objs.append((f"{mod.__name__}.{name}", obj))
            if inspect.isclass(obj):
                for mname, member in vars(obj).items():
                    fn = member.fget if isinstance(member, property) else member
                    if inspect.isfunction(fn):
                        objs.append((f"{mod.__name__}.{name}.{mname}", fn))
        for qual, obj in objs:
            doc = inspect.getdoc(obj) if callable(obj) or inspect.isclass(obj) else None
            m = _MODELS.match(doc or "")
            if not m or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            for kname in re.split(r"\s*(?:\+|->|/)\s*", m.group(2)):
                rows.add((kname, m.group(1), qual))
    return sorted(rows, key=lambda r: (r[1], r[0].lstrip("_"), r[2]))


def render() -> str:
    return "\n".join(f"| `{k}` | {f} | `{p}` |" for k, f, p in modelled())


def test_every_modelled_function_is_in_the_index() -> None:
    text = DOC.read_text()
    missing = [r for r in modelled() if f"| `{r[0]}` | {r[1]} | `{r[2]}` |" not in text]
    assert not missing, "docs/model.md index lacks rows:\n" + "\n".join(
        f"| `{k}` | {f} | `{p}` |" for k, f, p in missing
    )


def test_the_index_has_no_stale_rows() -> None:
    rows = {f"| `{k}` | {f} | `{p}` |" for k, f, p in modelled()}
    index = DOC.read_text().split("## Index", 1)[1]
    listed = {ln for ln in index.splitlines() if ln.startswith("| `") and "emulator." in ln}
    assert listed <= rows, f"stale rows: {sorted(listed - rows)}"


if __name__ == "__main__":
    print(render())
