"""The CI step that type-checks README.md's python blocks (issue 20)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / ".ci" / "check_readme.py"


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_readme", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MARKDOWN = """# Title

```python
x: int = 1
```

<!-- no-check -->
```python
partial(excerpt)
```

```bash
echo not python
```

```python
y: str = "a"
```
"""


def test_python_blocks_are_extracted_and_no_check_blocks_skipped() -> None:
    """Each ```python block with its line; a block after <!-- no-check --> and other languages not."""
    assert _module().python_blocks(MARKDOWN) == [(3, "x: int = 1\n"), (16, 'y: str = "a"\n')]


def _run(readme: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(readme)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_block_that_fails_mypy_strict_fails_the_step(tmp_path: Path) -> None:
    """A README block with a type error makes the step fail, naming the README's line."""
    readme = tmp_path / "README.md"
    readme.write_text('Text\n\n```python\ndef f(x):\n    return x\n\nn: int = "a"\n```\n')
    result = _run(readme)
    assert result.returncode != 0
    assert f"{readme}:4: error" in result.stdout  # the untyped def, under --strict
    assert f"{readme}:7: error" in result.stdout


def test_the_repository_readme_type_checks() -> None:
    """README.md as committed passes (what .ci/run checks)."""
    result = _run(ROOT / "README.md")
    assert result.returncode == 0, result.stdout


def test_the_readme_local_guard_snippet_prints_what_its_comments_say(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The LocalGuard block runs and prints the values its comments show."""
    blocks = [
        code
        for _, code in _module().python_blocks((ROOT / "README.md").read_text())
        if "verdict.masked" in code
    ]
    assert len(blocks) == 1
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == [
        "frozenset({'sensitive_data'})",
        "Charge my card XXXXXXXXXXXXXXXXXXX please",
        "True",
        "True",
    ]
