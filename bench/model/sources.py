"""Classes from the user's code: where they come from, their source, and loading them anywhere.

A user's class (an optimizer, a learning-rate schedule) is named one of three ways:

    path/to/my_opt.py:ClassName         a file (relative paths: to the working directory, or to the experiment file)
    package.module:ClassName            an importable module
    NAME                                an installed package's entry point (group ``bench.optimizers`` or
                                        ``bench.schedules``), or a class found in ``./optimizers/*.py``

or, from Python (``bench.run``), passed as the class itself. Whichever way, bench reads the class's source once,
when the run is checked, and from then on runs *that source*: it is hashed (SHA-256, part of the experiment's
identity), copied into the run folder, recorded in the manifest, and it travels with the configuration to
``--jobs`` workers and Ray tasks on other nodes, which compile it again from the text (no shared file system, no
install on the nodes). A module is compiled with its package set, so its relative imports still resolve where
the package is installed. Every way a user's code can fail to load is a BenchError naming the file (and line).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.metadata as md
import importlib.util
import inspect
import linecache
import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import BenchError, first_line

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
FOLDER = "optimizers"  # ./optimizers/*.py beside ./experiments/: discovered by class name
_LIVE: dict[str, type] = {}  # sha -> a class passed as an object (bench.run in a notebook): this process only


@dataclass(frozen=True)
class Source:
    """Where a user's class comes from, and the exact code bench runs."""

    kind: str  # "file", "module", "entry point", "notebook"
    where: str  # the file's absolute path, the module's name, "<entry point NAME>", "<notebook>"
    cls: str  # the class name
    text: str  # the source bench runs
    sha256: str
    package: str = ""  # a module's package (its relative imports)

    @property
    def ref(self) -> str:
        """The reference as recorded: what a user would type to name the same class again."""
        return f"{self.where}:{self.cls}"


def is_reference(text: str) -> bool:
    """``X.py:Class`` or ``pkg.mod:Class``: a reference to a user's class rather than a registry name."""
    head, sep, tail = text.partition(":")
    return bool(sep) and bool(IDENTIFIER.match(tail)) and (head.endswith(".py") or bool(DOTTED.match(head)))


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read(path: Path, what: str) -> str:
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise BenchError(f"{what}: file not found: {path}") from None
    except OSError as e:
        raise BenchError(f"{what}: cannot read {path} ({e.strerror or e})") from None
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError as e:
        line = blob[: e.start].count(b"\n") + 1
        raise BenchError(f"{path}:{line}: not UTF-8 text; Python files are UTF-8") from None


def from_reference(ref: str, what: str, base: Path | None = None) -> Source:
    """Read the source of ``path.py:Class`` (relative to ``base``, else the working directory) or
    ``package.module:Class``."""
    head, _, cls = ref.rpartition(":")
    if head.endswith(".py") or "/" in head or "\\" in head:
        path = Path(head).expanduser()
        if not path.is_absolute():
            path = (base or Path.cwd()) / path
        try:
            path = path.resolve()
        except (OSError, RuntimeError) as e:
            raise BenchError(f"{what}: {head}: not a usable path ({first_line(e)})") from None
        if path.is_dir():
            raise BenchError(f"{what}: {path} is a folder; name a .py file and a class: path/to/file.py:ClassName")
        text = _read(path, what)
        return Source("file", str(path), cls, text, _sha(text))
    try:
        spec = importlib.util.find_spec(head)
    except (ImportError, ValueError) as e:  # a parent package that does not import
        raise BenchError(f"{what}: module {head!r} cannot be found ({first_line(e) or type(e).__name__})") from None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        raise BenchError(f"{what}: no module named {head!r} (or it is not Python source); install it, or name a file: "
                         f"path/to/file.py:{cls}")
    text = _read(Path(spec.origin), what)
    return Source("module", head, cls, text, _sha(text), package=head.rpartition(".")[0] if spec.parent is None else
                  spec.parent)


def from_entry_point(name: str, group: str, what: str) -> Source | None:
    """The class an installed package declares under ``group`` as ``name`` (None: no such entry point)."""
    found = [ep for ep in md.entry_points(group=group) if ep.name == name]
    if not found:
        return None
    value = found[0].value
    module, _, attr = value.partition(":")
    if not attr or not IDENTIFIER.match(attr.strip()):
        raise BenchError(f"{what}: entry point {name!r} ({group}) is {value!r}; expected module:ClassName")
    src = from_reference(f"{module.strip()}:{attr.strip()}", what)
    return Source("entry point", src.where, src.cls, src.text, src.sha256, src.package)


def from_class(cls: type, what: str) -> Source:
    """A class passed as an object (``bench.run`` from a notebook or script): its module's source when it has a
    file, else the class's own source; refused when Python cannot find either."""
    module = inspect.getmodule(cls)
    path = getattr(module, "__file__", None)
    top_level = getattr(module, cls.__name__, None) is cls and "<locals>" not in cls.__qualname__
    if path and Path(path).suffix == ".py" and Path(path).is_file() and module.__name__ != "__main__" and top_level:
        return from_reference(f"{module.__name__}:{cls.__name__}", what) if importlib.util.find_spec(
            module.__name__) else from_reference(f"{path}:{cls.__name__}", what)
    try:
        text = inspect.getsource(cls)
    except (OSError, TypeError):
        raise BenchError(f"{what}: the source of {cls.__qualname__} cannot be found (defined interactively?): bench "
                         "records the code it runs; define the class in a file or a notebook cell") from None
    src = Source("notebook", "<notebook>", cls.__name__, text, _sha(text))
    _LIVE[src.sha256] = cls
    return src


# ------------------------------------------------------------------ loading


def _where_in(src: Source, e: BaseException) -> str:
    """``file:line`` of the deepest frame of ``e`` in the user's source (their line, not bench's)."""
    line = getattr(e, "lineno", None) if isinstance(e, SyntaxError) else None
    if line is None:
        for frame in reversed(traceback.extract_tb(e.__traceback__)):
            if frame.filename == src.where:
                line = frame.lineno
                break
    return f"{src.where}:{line}" if line else src.where


def _module_name(src: Source) -> str:
    """One module per (place, code): the same code in two files keeps its own file name in tracebacks."""
    key = "\0".join((src.where, src.sha256)).encode()
    return f"bench_user_{hashlib.sha256(key).hexdigest()[:16]}"


def load(src: Source, what: str) -> type:
    """The class, compiled from the recorded source (once per process): exactly the code that was hashed."""
    if src.kind == "notebook":
        cls = _LIVE.get(src.sha256)
        if cls is None:
            raise BenchError(f"{what}: a class defined in a notebook ({src.cls}) trains in the process that defined "
                             "it only (bench.run with jobs=1); put it in a file for --jobs, Ray or --resume")
        return cls
    name = _module_name(src)
    module = sys.modules.get(name)
    if module is None:
        # the source under its own file name: tracebacks and inspect show the user's lines
        linecache.cache[src.where] = (len(src.text), None, src.text.splitlines(keepends=True), src.where)
        try:
            code = compile(src.text, src.where, "exec")
        except SyntaxError as e:
            raise BenchError(f"{_where_in(src, e)}: syntax error: {e.msg}") from None
        module = types.ModuleType(name)
        module.__file__ = src.where if src.kind == "file" else f"<{src.where}>"
        if src.package:
            module.__package__ = src.package
        sys.modules[name] = module
        try:
            exec(code, module.__dict__)  # noqa: S102 - the user's own code, named by the user, hashed and recorded
        except Exception as e:  # noqa: BLE001 - any failure of their module is theirs: named with its line
            del sys.modules[name]
            raise BenchError(f"{_where_in(src, e)}: importing it failed: {type(e).__name__}: {first_line(e)}") from None
    cls = getattr(module, src.cls, None)
    if not isinstance(cls, type):
        found = [n for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == name]
        hint = f"; it defines: {', '.join(found)}" if found else ""
        raise BenchError(f"{what}: {src.where} has no class {src.cls!r}{hint}")
    return cls


def error_in(src: Source, e: BaseException) -> str:
    """Where in the user's source an exception (a constructor's, an update step's) was raised, with its message."""
    return f"{_where_in(src, e)}: {type(e).__name__}: {message(e)}"


def message(e: BaseException) -> str:
    """An exception's own message in one line. TensorFlow re-raises an error from traced code with a story
    ("in user code: File ..., line N ...") whose last line is the original message: that line."""
    text = str(e).strip()
    if text.startswith("in user code:"):
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        last = lines[-1] if lines else ""
        return last.partition(": ")[2] or last
    return first_line(e)


# ------------------------------------------------------------------ discovery


def folder_classes(folder: Path = Path(FOLDER)) -> dict[str, str]:
    """lower-case class name -> "file.py:Class" for every top-level class in ``folder/*.py`` (parsed, not
    imported: listing them runs none of their code)."""
    out: dict[str, str] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        except (SyntaxError, OSError, UnicodeDecodeError, ValueError):
            continue  # named when it is used: one line with its line number
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                out.setdefault(node.name.lower(), f"{path.resolve()}:{node.name}")
    return out


def entry_point_names(group: str) -> list[str]:
    return sorted({ep.name for ep in md.entry_points(group=group)})
