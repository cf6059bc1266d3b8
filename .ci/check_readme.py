"""Type-check every ```python block of README.md with mypy --strict.

Each block is written to a file of its own in a temporary directory (padded so that mypy's line
numbers are the README's) and the files are checked together, so that a block can be read on its own, as a user copies it. A block that is
deliberately partial (an excerpt that needs names from elsewhere) is skipped when the line
before its opening fence is ``<!-- no-check -->``; use it sparingly.

Run from the repository root: ``python .ci/check_readme.py [README.md]``. Exit code: mypy's.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

SKIP_MARK = "<!-- no-check -->"
_FENCE = re.compile(r"^```python[ \t]*$")


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """The ```python blocks to check: (line number of the opening fence, code)."""
    lines = markdown.splitlines()
    blocks: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        if _FENCE.match(lines[index]):
            start = index
            index += 1
            code: list[str] = []
            while index < len(lines) and lines[index].strip() != "```":
                code.append(lines[index])
                index += 1
            previous = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
            if previous != SKIP_MARK:
                blocks.append((start + 1, "\n".join(code) + "\n"))
        index += 1
    return blocks


def main(argv: list[str]) -> int:
    readme = Path(argv[0] if argv else "README.md")
    blocks = python_blocks(readme.read_text(encoding="utf-8"))
    if not blocks:
        print(f"{readme}: no python blocks to check")
        return 0
    with tempfile.TemporaryDirectory(prefix="readme-blocks-") as directory:
        files = []
        for line, code in blocks:
            path = Path(directory) / f"readme_line_{line}.py"
            # Blank lines first, so that mypy's line numbers are the README's.
            path.write_text("\n" * line + code, encoding="utf-8")
            files.append(str(path))
        # Each block is its own module; the repository's package is the one imported.
        command = [sys.executable, "-m", "mypy", "--strict", *files]
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    output = re.sub(r"\S*readme_line_\d+\.py", str(readme), result.stdout)
    print(output, end="")
    print(result.stderr, end="", file=sys.stderr)
    print(f"{readme}: {len(blocks)} python blocks type-checked")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
