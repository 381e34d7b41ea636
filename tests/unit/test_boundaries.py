"""The package's import boundaries, read from the source with `ast` (nothing is imported).

DESIGN.md: rollout and learner meet only through the wire, `relayrl.weights` and Redis, so
neither imports the other, and `relayrl.weights` (where they meet) imports neither. The actor
decides which errors to retry by the one retry policy (`relayrl.retry`), not by the reward
client's exception types. And no module imports a private name (leading underscore) from
another top-level part of relayrl: what a part shares, it names publicly. Every import counts:
`import`, `from ... import`, relative, and those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "services" / "relayrl"

# (importer, imported, why): a module at or under `importer` may not import anything at or under `imported`
RULES = [
    ("relayrl.rollout", "relayrl.learner", "rollout and learner meet only through the wire, relayrl.weights and Redis"),
    ("relayrl.learner", "relayrl.rollout", "rollout and learner meet only through the wire, relayrl.weights and Redis"),
    ("relayrl.weights", "relayrl.learner", "relayrl.weights is where rollout and learner meet: it depends on neither"),
    ("relayrl.weights", "relayrl.rollout", "relayrl.weights is where rollout and learner meet: it depends on neither"),
    ("relayrl.rollout.actor", "relayrl.reward", "the actor retries by relayrl.retry.is_transient, not the reward's types"),
]

# Private imports across top-level parts that are tolerated, as (importing module, what it
# imports): none. Name the thing publicly instead of adding one here.
ALLOWLIST: set[tuple[str, str]] = set()


def modules() -> list[tuple[Path, str]]:
    """(file, dotted module name) of every module of the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found.append((path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)))
    return found


def imported(path: Path, name: str) -> list[tuple[int, str]]:
    """(line, dotted name) of everything module `name` (at `path`) imports: modules, and
    module.name for each name of a `from` import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against this module's package
                anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_violations(mods: list[tuple[Path, str]]) -> list[str]:
    """One line per import statement that breaks a rule."""
    bad: dict[tuple[str, int, str], str] = {}
    for path, me in mods:
        for line, target in imported(path, me):
            for importer, forbidden, why in RULES:
                if under(me, importer) and under(target, forbidden):
                    bad.setdefault((me, line, forbidden), f"{me} (line {line}) imports {target}: {why}")
    return list(bad.values())


def private_imports(mods: list[tuple[Path, str]]) -> list[tuple[str, str, int]]:
    """(module, private name or module it imports from another top-level part, line)."""
    found = []
    for path, me in mods:
        mine = me.split(".")[1] if "." in me else None
        for line, target in imported(path, me):
            parts = target.split(".")
            if parts[0] != "relayrl" or len(parts) < 2 or parts[1] == mine:
                continue
            if any(p.startswith("_") and not p.endswith("__") for p in parts[1:]):  # __version__ is public
                found.append((me, target, line))
    return found


def test_the_check_reads_the_whole_package():
    names = {name for _, name in modules()}
    assert {"relayrl.cli", "relayrl.weights.store", "relayrl.rollout.actor", "relayrl.learner.server"} <= names


def test_rollout_learner_and_weights_keep_their_boundaries():
    bad = rule_violations(modules())
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def test_no_module_imports_a_private_name_of_another_part():
    bad = [f"{me} (line {line}) imports {target}" for me, target, line in private_imports(modules())
           if (me, target) not in ALLOWLIST]
    assert not bad, "private imports across parts (name it publicly instead):\n" + "\n".join(bad)


def test_the_allowlist_holds_only_imports_that_still_exist_outside_weights_learner_and_rollout():
    present = {(me, target) for me, target, _ in private_imports(modules())}
    stale = ALLOWLIST - present
    assert not stale, f"remove these ALLOWLIST entries, their imports are gone: {sorted(stale)}"
    for me, _ in ALLOWLIST:
        assert not any(under(me, f"relayrl.{part}") for part in ("weights", "learner", "rollout")), me


def test_every_form_of_import_is_seen(tmp_path):
    """The checks themselves: plain, `from`, relative and function-local imports all count."""
    probe = tmp_path / "probe.py"
    probe.write_text("import relayrl.learner.grpo\nfrom relayrl import learner\nfrom ..learner import trainer\n"
                     "def f():\n    from relayrl.replay.redis_queue import _FIELD\n"
                     "    from relayrl.rollout import _helper\n")
    mods = [(probe, "relayrl.rollout.probe")]
    assert len(rule_violations(mods)) == 3  # grpo, `learner` from relayrl, the relative trainer
    assert [t for _, t, _ in private_imports(mods)] == ["relayrl.replay.redis_queue._FIELD"]  # own part: allowed
