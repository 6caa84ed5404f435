"""Regenerate the generated blocks of README.md (`make readme`); tests/test_readme.py checks they are current."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def generated_blocks() -> dict[str, str]:
    from gradattn.models import format_model_table

    return {"models-table": "\n\n".join([format_model_table(10, 3), format_model_table(10, 1)])}


def render(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        pattern = re.compile(rf"(<!-- {name}:start -->\n).*?(<!-- {name}:end -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"README.md has no '<!-- {name}:start -->' ... '<!-- {name}:end -->' markers")
        text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main() -> int:
    text = README.read_text()
    new = render(text, generated_blocks())
    if "--check" in sys.argv:
        return 0 if new == text else 1
    tmp = README.with_suffix(".md.tmp")
    tmp.write_text(new)
    os.replace(tmp, README)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
