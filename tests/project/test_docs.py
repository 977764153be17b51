"""Docs state what the code does: channel colours and speed figures quoted from docs/performance.md."""
import re
from pathlib import Path

from antibodies.keys import CHANNEL_COLORS, MARKER, MARKER_TOPHAT, NUCLEI

ROOT = Path(__file__).resolve().parents[2]


def table_row(text, first_cell):
    rows = [line for line in text.splitlines() if line.startswith(f"| {first_cell} |")]
    assert len(rows) == 1, first_cell
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def test_colours_in_the_data_model_are_the_ones_written():
    text = (ROOT / "docs" / "data_model.md").read_text()
    assert table_row(text, f"`{MARKER_TOPHAT}`")[-1] == CHANNEL_COLORS.get(MARKER_TOPHAT, "Gray")
    roles = table_row(text, "`nuclei`, `marker`, `serum_IgG`, `serum_IgA`, `serum_IgM`")[-1]
    assert roles == ", ".join(dict.fromkeys(CHANNEL_COLORS.values()))
    assert CHANNEL_COLORS[NUCLEI] == "Blue" and CHANNEL_COLORS[MARKER] == "Red"
    viewing = (ROOT / "docs" / "viewing.md").read_text()
    assert f"`{MARKER_TOPHAT}` {CHANNEL_COLORS.get(MARKER_TOPHAT, 'Gray').lower()}" in viewing


def test_speed_ups_quoted_elsewhere_are_measured_in_performance_md():
    performance = (ROOT / "docs" / "performance.md").read_text()
    measured = {m for line in performance.splitlines() if line.startswith("|")
                for m in re.findall(r"(\d+\.\d+)x", line)}
    quoted = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name != "performance.md":
            for low, high in re.findall(r"(\d+\.\d+)(?:-(\d+\.\d+))?x\b", path.read_text()):
                quoted.update({number: path.name for number in (low, high) if number})
    assert quoted, "no speed-up quoted outside docs/performance.md any more: drop this test"
    assert {number: name for number, name in quoted.items() if number not in measured} == {}
