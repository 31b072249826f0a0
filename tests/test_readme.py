"""The README's Python examples run as written (one namespace, top to bottom)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 4
    namespace = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    assert namespace["report"].ok(1e-6)
    led = namespace["led"]
    assert abs(led.contributions["W_aa"].sum(0) - led.grads["W_aa"]).max() < 1e-12
