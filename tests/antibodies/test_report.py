"""The plate report as a person sees it: one self-contained page, opened in a browser."""
import base64
import html
import re
import shutil
import subprocess

import numpy as np
import pytest

from antibodies import keys
from antibodies.report import readable_column
from antibodies.report.html import format_value
from luigi_tasks.io import open_file, read_table

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs it: apt-get install -y chromium)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(processed_plate):
    path = processed_plate["output"] / "report" / "index.html"
    with open_file(processed_plate["output"] / f"{processed_plate['name']}_tables.hdf5") as f:
        wells, images = read_table(f, "wells/default"), read_table(f, "images/default")
        width = float(read_table(f, keys.SPILLOVER_WIDTHS)["width"].iloc[0])
    return {"path": path, "text": path.read_text(encoding="utf-8"), "wells": wells, "images": images,
            "spillover_width": width}


def test_report_is_self_contained(report):
    text = report["text"]
    assert len(text) < 5 * 2**20
    links = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)
    assert links and all(link.startswith(("data:", "#")) for link in links), [l[:40] for l in links]
    assert "<link rel=\"stylesheet\"" not in text and "<script src" not in text and "url(" not in text
    images = re.findall(r'<img src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == text.count("<img ")
    assert all(base64.b64decode(data)[:8] == PNG_SIGNATURE for data in images)


def test_report_shows_heatmaps_distributions_and_thumbnails(report):
    text = report["text"]
    for column in ("serum_IgG_score", "serum_IgG_robust_z_score", "n_cells", "fraction_infected"):
        assert f'alt="heatmap {column}"' in text, column
    assert "IgG score (cut-off 1.3)" in text  # the default positive cut-off
    assert text.count('alt="IgG: infected vs control cells per well') == 1
    shown = re.search(r"spillover compensated over ([0-9.]+) px", text)
    assert shown and float(shown.group(1)) == pytest.approx(report["spillover_width"], abs=0.005)
    assert text.count('alt="IgG: score histogram') == 1
    assert 2 <= text.count('alt="thumbnail ') <= 4  # best, worst, up to two outliers


def test_plate_grid_crosses_out_outliers_with_their_reason(report):
    text, wells = report["text"], report["wells"]
    for well in wells.to_dict("records"):
        cell = re.search(rf'<td class="(\w+)" title="([^"]*)" data-well="{well["well_name"]}"', text)
        assert cell is not None, well["well_name"]
        css, title = cell.group(1), html.unescape(cell.group(2))
        outlier = well["is_outlier"] or well["serum_IgG_is_outlier"]
        assert (css == "outlier") == outlier
        if outlier:
            assert well["serum_IgG_outlier_type"] in title
        else:
            assert css == ("positive" if well["serum_IgG_score"] > 1.3 else "negative")
            assert f"IgG score {format_value(well['serum_IgG_score'])}" in title


def test_qc_table_and_run_summary(report):
    text, wells, images = report["text"], report["wells"], report["images"]
    qc = text[text.index('id="qc"'):text.index('id="thumbnails"')]
    for reason in wells.loc[wells["serum_IgG_is_outlier"], "serum_IgG_outlier_type"]:
        assert html.escape(reason) in qc
    summary = text[text.index('id="summary"'):text.index('id="wells"')]
    assert f"<dt>Images processed</dt><dd>{len(images)}</dd>" in summary
    assert "<dt>Failed images</dt><dd>0</dd>" in summary and "<dt>Invalid raw files</dt><dd>0</dd>" in summary
    assert "<dt>Software version</dt>" in summary and "Time taken" in summary
    assert "scores_positive_cutoff_IgG" in summary and "PlateScores" in summary  # parameters and jobs
    assert html.escape(readable_column("serum_IgG_score")) in text[text.index('id="wells"'):]


def _chromium(*args, tmp_path):
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=180, check=True)


@needs_chromium
def test_report_renders_in_headless_chromium(report, tmp_path):
    url = report["path"].resolve().as_uri()
    dom = _chromium("--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", url,
                    tmp_path=tmp_path)
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == []  # no errors, warnings or logs from the page
    assert 'data-ready="true"' in dom.stdout and 'data-broken-images="0"' in dom.stdout
    assert re.search(r'<img src="data:image/png;base64,[^"]+" alt="heatmap serum_IgG_score"', dom.stdout)

    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1400,900", url, tmp_path=tmp_path)
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape == (900, 1400, 3)
    colourful = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.3  # heatmap and plate grid colours
    assert pixels.std() > 0.05 and (pixels < 0.9).any(axis=2).mean() > 0.02 and colourful.sum() > 2000


def test_thumbnail_outlines_infected_cells_in_magenta():
    from antibodies.report import Channel, cell_thumbnail

    cells = np.zeros((40, 40), np.int32)
    cells[5:15, 5:15], cells[20:35, 20:35] = 1, 2
    nuclei = Channel(np.full((40, 40), 100.0), (0, 100), "Blue")
    rgb = cell_thumbnail([nuclei], cells, infected_ids=[2])
    magenta = (rgb[..., 0] == 255) & (rgb[..., 1] == 0) & (rgb[..., 2] == 255)
    white = (rgb == 255).all(axis=2)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 40, 3)
    assert magenta[20:35, 20:35].sum() == 4 * 14 and not magenta[:18].any()  # cell 2's border only
    assert white[5:15, 5:15].sum() == 4 * 9 and tuple(rgb[10, 10]) == (0, 102, 255)  # blue inside cell 1


def test_plate_grid_crosses_out_an_outlier_well_with_its_reason():
    import pandas as pd

    from antibodies.report.html import plate_grid_html

    wells = pd.DataFrame({"well_name": ["A01", "A02", "B01"], "is_outlier": [False, False, True],
                          "outlier_type": ["", "", "too few control cells (3 < 100)"],
                          "n_cells": [100, 120, 5], "n_infected": [50, 60, 2], "fraction_infected": [0.5, 0.5, 0.4],
                          "serum_IgG_score": [1.8, 1.1, np.nan], "serum_IgG_robust_z_score": [3.0, 0.2, np.nan],
                          "serum_IgG_is_outlier": [False, False, True],
                          "serum_IgG_outlier_type": ["", "", "too few control cells (3 < 100)"]})
    grid = plate_grid_html(wells, "serum_IgG", cutoff=1.3)
    classes = dict((w, c) for c, w in re.findall(r'<td class="(\w+)" title="[^"]*" data-well="(\w+)"', grid))
    assert classes == {"A01": "positive", "A02": "negative", "B01": "outlier"}
    title = html.unescape(re.search(r'title="([^"]*)" data-well="B01"', grid).group(1))
    assert "OUTLIER: too few control cells (3 < 100)" in title
    assert grid.count('class="empty"') == 96 - 3


def test_plate_grid_shows_inconclusive_wells_with_their_interval():
    import pandas as pd

    from antibodies.report.html import plate_grid_html

    wells = pd.DataFrame({"well_name": ["A01", "A02", "A03"], "is_outlier": [False] * 3, "outlier_type": [""] * 3,
                          "n_cells": [100, 40, 120], "n_infected": [50, 6, 60], "fraction_infected": [0.5, 0.15, 0.5],
                          "serum_IgG_score": [1.8, 1.4, 1.1],
                          "serum_IgG_is_positive": pd.array([True, pd.NA, False], dtype="boolean"),
                          "serum_IgG_score_ci_low": [1.7, 1.1, 1.05], "serum_IgG_score_ci_high": [1.9, 1.8, 1.15],
                          "serum_IgG_robust_z_score": [3.0, 1.0, 0.2], "serum_IgG_is_outlier": [False] * 3,
                          "serum_IgG_outlier_type": [""] * 3})
    grid = plate_grid_html(wells, "serum_IgG", cutoff=1.3)
    classes = dict((w, c) for c, w in re.findall(r'<td class="(\w+)" title="[^"]*" data-well="(\w+)"', grid))
    assert classes == {"A01": "positive", "A02": "inconclusive", "A03": "negative"}
    title = html.unescape(re.search(r'title="([^"]*)" data-well="A02"', grid).group(1))
    assert "(inconclusive, cut-off 1.3)" in title and "interval 1.1-1.8" in title


def test_a_plate_without_scores_says_why_at_the_top_of_quality_control(report):
    from types import SimpleNamespace

    import pandas as pd

    from antibodies.report.page import _qc_section

    assert 'class="warning"' not in report["text"]  # the processed plate is fine
    wells = pd.DataFrame({"well_name": ["A01", "A02"], "is_outlier": [False, False], "outlier_type": ["", ""],
                          "n_infected": [0, 0], "serum_IgG_score": [np.nan, np.nan],
                          "serum_IgG_is_outlier": [False, False], "serum_IgG_outlier_type": ["", ""]})
    images = pd.DataFrame(columns=["image_name", "well_name", "is_outlier", "outlier_type",
                                   "serum_IgG_is_outlier", "serum_IgG_outlier_type"])
    inputs = SimpleNamespace(images=images, wells=wells, statuses={}, warnings=None)
    body = _qc_section(inputs, ["serum_IgG"]).body
    assert body.startswith('<p class="warning"><strong>Warning:</strong> no infected cell on the whole plate')
    assert "serum_IgG: none of the 2 wells has a score (2 x no reason given)" in html.unescape(body)


def test_intensity_distributions_show_the_cells_that_enter_the_scores():
    import pandas as pd

    from antibodies.analysis.background import BackgroundStats
    from antibodies.analysis.scores import ImageCells
    from antibodies.report import cell_intensities

    table = pd.DataFrame({"label_id": [1, 2, 3], "means": [50.0, 30.0, 20.0], "sizes": [300, 300, 300]})
    calls = pd.DataFrame({"label_id": [1, 2, 3], "is_infected": [True, True, False],
                          "is_control": [False, False, True], "is_clear_call": [True, False, True]})
    record = ImageCells("a", "A01-0000", "A01", {"serum_IgG": table}, calls)
    shown = cell_intensities([record], {"serum_IgG": BackgroundStats(10.0, 1.0)}, ["serum_IgG"])
    assert shown["intensity"].tolist() == [40.0, 10.0] and shown["infected"].tolist() == [True, False]


def test_intensity_distributions_leave_out_an_image_only_for_the_serum_it_is_flagged_for():
    import pandas as pd

    from antibodies.analysis.background import BackgroundStats
    from antibodies.analysis.scores import ImageCells
    from antibodies.report import cell_intensities

    def record(name, value):
        table = pd.DataFrame({"label_id": [1, 2], "means": [value, value], "sizes": [300, 300]})
        calls = pd.DataFrame({"label_id": [1, 2], "is_infected": [True, False], "is_control": [False, True]})
        return ImageCells(name, name, "A01", {"serum_IgG": table, "serum_IgA": table}, calls)

    sera, zero = ["serum_IgG", "serum_IgA"], BackgroundStats(0.0, 1.0)
    shown = cell_intensities([record("clipped", 60000.0), record("fine", 50.0)], dict.fromkeys(sera, zero), sera,
                             left_out={"serum_IgG": {"clipped"}})
    by_serum = shown.groupby("serum")["image_name"].unique()
    assert by_serum["serum_IgG"].tolist() == ["fine"] and sorted(by_serum["serum_IgA"]) == ["clipped", "fine"]
    assert shown.loc[shown["serum"] == "serum_IgG", "intensity"].tolist() == [50.0, 50.0]
