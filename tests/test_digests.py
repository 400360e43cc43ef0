"""Source digests follow the code, not its comments, docstrings or layout."""

from __future__ import annotations

import pytest

from gravity import digests

CODE = '''
"""A module docstring."""

SCALE = 2.0
"""An attribute docstring."""


def double(x):
    """A function docstring."""
    # a comment
    return SCALE * x


class Thing:
    """Only a docstring."""
'''

REWORDED = '''
"""Another module docstring, longer,
over two lines."""

SCALE = 2.0  # trailing comment


def double(x):
    """Reworded."""
    return SCALE * x   # layout changed too


class Thing:
    pass
'''


def test_comments_docstrings_and_layout_leave_the_digest_unchanged():
    assert digests.code_digest([CODE]) == digests.code_digest([REWORDED])


@pytest.mark.parametrize(
    "edit",
    [("SCALE = 2.0", "SCALE = 3.0"), ("return SCALE * x", "return SCALE + x"), ("x):", "y=1):")],
)
def test_a_change_to_the_code_changes_the_digest(edit):
    old, new = edit
    assert digests.code_digest([CODE]) != digests.code_digest([CODE.replace(old, new, 1)])


def test_a_string_that_is_used_is_code():
    assert digests.code_digest(["x = 'a'"]) != digests.code_digest(["x = 'b'"])


def test_the_files_order_and_boundaries_count():
    assert digests.code_digest(["a = 1", "b = 2"]) != digests.code_digest(["b = 2", "a = 1"])


def test_an_indented_method_source_is_digested():
    method = "    def f(self):\n        '''doc'''\n        return 1\n"
    assert digests.code_digest([method]) == digests.code_digest(["def f(self):\n    return 1"])


def test_the_hashed_code_never_reads_a_docstring():
    """The digests leave docstrings out, so the code they key (`gravity/engine`,
    `gravity/defences`) must not compute with one (`__doc__`, `inspect.getdoc`)."""
    import ast
    from pathlib import Path

    root = Path(digests.__file__).parent
    for layer in ("engine", "defences"):
        for path in sorted((root / layer).rglob("*.py")):
            tree = ast.parse(path.read_text())
            names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            assert not names & {"__doc__", "getdoc"}, f"{path} reads a docstring"
