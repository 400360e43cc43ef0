"""Digests of Python source by what it computes: comments, docstrings, string statements and
layout left out, so a reworded docstring never orphans the results a store keeps for the code.

The digest is of the syntax tree (`ast.dump`, without positions) after every statement that is
a bare string constant (module, class, function and attribute docstrings) is dropped. Python
versions whose syntax trees differ (3.12 added `type_params`) give different digests for the
same file: a store made on one is recomputed on the other, never served wrongly. What the digest
cannot see is a docstring read at run time (`__doc__`): the code it keys (`gravity/engine`,
`gravity/defences`) reads none, and a test keeps it so.
"""

from __future__ import annotations

import ast
import hashlib
import textwrap
from collections.abc import Iterable
from pathlib import Path


def _without_string_statements(tree: ast.AST) -> ast.AST:
    """`tree` with every bare string-constant statement removed (a body left empty gets
    `pass`, which a docstring-only body would have meant)."""
    for node in ast.walk(tree):
        for field in ("body", "orelse", "finalbody"):
            body = getattr(node, field, None)
            if not isinstance(body, list) or not body or not isinstance(body[0], ast.stmt):
                continue
            kept = [
                statement
                for statement in body
                if not (
                    isinstance(statement, ast.Expr)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)
                )
            ]
            setattr(node, field, kept or [ast.Pass()])
    return tree


def source_text(source: str) -> str:
    """What a digest of `source` hashes: its syntax tree without string statements."""
    tree = ast.parse(textwrap.dedent(source))
    return ast.dump(_without_string_statements(tree), include_attributes=False)


def code_digest(sources: Iterable[str]) -> str:
    """A 16-hex-digit digest of the code in `sources` (in order), blind to comments, docstrings
    and layout."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source_text(source).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def files_digest(files: Iterable[Path]) -> str:
    """`code_digest` of the files' text, in the order given."""
    return code_digest(Path(file).read_text() for file in files)
