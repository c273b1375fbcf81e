"""What `clew sql` runs without `--write`: one statement that only reads the store's tables.

ClickHouse enforces most of it: the statement runs with `readonly=1`, which refuses writes,
setting changes and the table functions that reach files, URLs and other servers. It lets
through SYSTEM and KILL, `SELECT ... INTO OUTFILE` (chDB writes the file), the scalar
function `file()` (reads any file the process can), tables of other databases, and, in chDB,
a statement before a `;` (the driver's trailing `SETTINGS readonly=1` reaches only the
last). So ClickHouse first parses the statement (`formatQuerySingleLine`, which also refuses
a second statement and drops comments) and dumps its tree (`EXPLAIN AST`); this module walks
the tree. The formatted statement, the one checked, is the one that runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

READ_ONLY_SETTINGS = {"readonly": 1}

# The first keyword of a formatted statement that only reads (ClickHouse writes keywords in
# capitals); anything else is refused before it is even explained.
_READING_KEYWORDS = frozenset({"SELECT", "WITH", "SHOW", "DESCRIBE", "EXISTS", "EXPLAIN"})
# The tree's root for those statements: SHOW PROCESSLIST, SHOW GRANTS ... have other roots.
_READING_STATEMENTS = frozenset({"SelectWithUnionQuery", "ShowTables", "ShowColumns",
                                 "ShowCreateTableQuery", "DescribeQuery", "ExistsTableQuery"})
# Table functions that make rows from their arguments alone (`view` reads its subquery,
# which is checked like any other).
_LOCAL_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "values",
                                    "generate_series", "generateSeries", "generateRandom",
                                    "view"})
# Ordinary functions that read outside the store (`file('/etc/passwd')` returns its bytes).
_OUTSIDE_FUNCTIONS = frozenset({"file"})
_IN_FUNCTIONS = frozenset({"in", "notIn", "globalIn", "globalNotIn", "nullIn", "notNullIn",
                           "globalNullIn", "globalNotNullIn"})
_NEEDS_WRITE = "runs only with --write"
# A string literal as ClickHouse formats it (quotes in it escaped), or a quoted name (group
# 1), matched too so that a `'` inside a name does not start a string.
_STRINGS = re.compile(r"'(?:[^'\\]|\\.)*'|(`(?:[^`\\]|\\.)*`)")


@dataclass
class _Node:
    """One line of `EXPLAIN AST`: `Function file (alias f) (children 1)` is kind `Function`,
    name `file`; `TableIdentifier system.one` is kind `TableIdentifier`, name `system.one`."""

    kind: str
    name: str
    children: list[_Node] = field(default_factory=list)

    def walk(self, parent: _Node | None = None) -> Iterator[tuple[_Node, _Node | None]]:
        """Every node of the tree with its parent, this one first."""
        yield self, parent
        for child in self.children:
            yield from child.walk(self)


def read_only_statement(client: Any, query: str, *, database: str) -> str:
    """The statement to run for `query` without `--write`.

    Raises:
        ValueError: ClickHouse cannot parse `query` as one statement.
        PermissionError: the statement does more than read the tables of `database`; the
            message names what and says that --write runs it.
    """
    statement = _formatted(client, query)
    if "\\" in _STRINGS.sub(lambda found: found[1] or "", statement):
        # `EXPLAIN AST` prints names as they are: a line break in one would forge lines of
        # the tree. ClickHouse writes a name's control characters as backslash escapes.
        raise PermissionError("names with escapes (`a\\nb`) are refused: clew sql "
                              f"{_NEEDS_WRITE}")
    keyword = statement.split(" ", 1)[0]
    if keyword not in _READING_KEYWORDS:
        raise PermissionError(f"{keyword} changes the store or the server: clew sql "
                              f"{_NEEDS_WRITE} (without it: SELECT, WITH, SHOW, DESCRIBE, "
                              "EXISTS, EXPLAIN)")
    tree = _tree(client.query(f"EXPLAIN AST {statement}").result_rows)
    root = tree.children[0] if tree.kind == "Explain" and tree.children else tree
    if root.kind not in _READING_STATEMENTS:
        shown = " ".join(statement.split(" ", 2)[:2])
        raise PermissionError(f"{shown} is not a read of the store's tables: clew sql "
                              f"{_NEEDS_WRITE}")
    for node, parent in tree.walk():
        _check(node, parent, database)
    return statement


def _formatted(client: Any, query: str) -> str:
    """`query` as ClickHouse writes it back: one statement, one line, no comments."""
    try:
        rows = client.query("SELECT formatQuerySingleLine({q:String})",
                            parameters={"q": query}).result_rows
    except Exception as error:  # noqa: BLE001 - the driver's error class stays in exporter.store
        reason = re.sub(r"[.:]* In scope SELECT formatQuerySingleLine\(.*", "", str(error),
                        flags=re.S)
        raise ValueError(f"clew sql runs one statement, and this does not parse as one: "
                         f"{' '.join(reason.split())}") from None
    return rows[0][0]


def _tree(lines: list[tuple[str, ...]]) -> _Node:
    """The root of an `EXPLAIN AST` dump: one node a line, indented one space a level."""
    stack: list[_Node] = []
    for (line,) in lines:
        depth = len(line) - len(line.lstrip(" "))
        # The name is the second word: an alias after it may hold anything.
        kind, name, *_ = (*line.split(), "")
        node = _Node(kind, name)
        del stack[max(depth, 1):]  # one root: what follows it is below it
        if stack:
            stack[-1].children.append(node)
        stack.append(node)
    return stack[0]


def _check(node: _Node, parent: _Node | None, database: str) -> None:
    if node.kind == "Set":
        raise PermissionError(f"SET and SETTINGS change settings: clew sql {_NEEDS_WRITE}")
    if node.kind == "Literal" and parent is not None and parent.kind == "SelectWithUnionQuery":
        raise PermissionError(f"INTO OUTFILE writes a file: clew sql {_NEEDS_WRITE}")
    if node.kind == "Function":
        if parent is not None and parent.kind == "TableExpression":
            if node.name not in _LOCAL_TABLE_FUNCTIONS:
                raise PermissionError(f"table function {node.name}() reaches outside the "
                                      f"store's tables: clew sql {_NEEDS_WRITE}")
        elif node.name.lower() in _OUTSIDE_FUNCTIONS:
            raise PermissionError(f"function {node.name}() reads outside the store: clew sql "
                                  f"{_NEEDS_WRITE}")
        elif node.name in _IN_FUNCTIONS and node.children:
            for argument in node.children[0].children[1:]:
                if argument.kind == "Identifier":
                    _check_table(argument.name, database)
    if node.kind == "TableIdentifier":
        _check_table(node.name, database)


def _check_table(name: str, database: str) -> None:
    """A table named `db.table` must be in the store's database."""
    other, dot, _ = name.partition(".")
    if dot and other != database:
        raise PermissionError(f"{name} is outside the store's database {database!r}: clew sql "
                              f"{_NEEDS_WRITE}")
