import numpy as np
import pytest

from antibodies.analysis.cells import (
    CELL_MODEL_FLIPS,
    DistanceHeightMap,
    FixedThresholdForeground,
    GuidedOtsuForeground,
    IntensityHeightMap,
    OtsuForeground,
    ProbabilityHeightMap,
    PropagationHeightMap,
    cell_model_input,
    cell_probability,
    flip_averaged,
    mean_serum,
    rolling_ball_level,
    segment_cells,
)

HEIGHT_MAPS = [DistanceHeightMap(), IntensityHeightMap(), PropagationHeightMap()]


def strip_of_two_cells(bright_left=10.0, dim_right=2.0):
    """9 x 40 strip: nuclei at x 3..5 (id 4) and 28..30 (id 9).

    Serum is bright for x < 20, dim for 20 <= x < 34 and 0 beyond.
    """
    nuclei = np.zeros((9, 40), dtype=np.int32)
    nuclei[3:6, 3:6] = 4
    nuclei[3:6, 28:31] = 9
    serum = np.zeros((9, 40), dtype=np.float32)
    serum[:, :20] = bright_left
    serum[:, 20:34] = dim_right
    return nuclei, serum


@pytest.mark.parametrize("height_map", HEIGHT_MAPS)
def test_each_nucleus_grows_into_one_cell_with_its_id(height_map):
    nuclei, serum = strip_of_two_cells()
    cells = segment_cells(nuclei, serum, FixedThresholdForeground(1.0, 0), height_map)
    assert cells.dtype == np.int32
    assert set(np.unique(cells)) == {0, 4, 9}
    assert np.all(cells[nuclei > 0] == nuclei[nuclei > 0])
    np.testing.assert_array_equal(cells[:, 34:], 0)
    assert np.all(cells[:, :34] > 0)


def test_distance_height_map_splits_halfway_between_nuclei():
    nuclei, serum = strip_of_two_cells()
    cells = segment_cells(nuclei, serum, FixedThresholdForeground(1.0, 0), DistanceHeightMap())
    # nucleus centres at x = 4 and x = 29: midpoint 16.5
    np.testing.assert_array_equal(cells[:, :16], 4)
    np.testing.assert_array_equal(cells[:, 17:34], 9)


def test_propagation_height_map_splits_at_the_intensity_edge():
    nuclei, serum = strip_of_two_cells()
    height_map = PropagationHeightMap(regularization=0.01, smoothing_sigma=1.0)
    cells = segment_cells(nuclei, serum, FixedThresholdForeground(1.0, 0), height_map)
    np.testing.assert_array_equal(cells[:, :19], 4)
    np.testing.assert_array_equal(cells[:, 21:34], 9)


def test_large_regularization_approaches_the_distance_split():
    nuclei, serum = strip_of_two_cells()
    foreground = FixedThresholdForeground(1.0, 0)
    distance = segment_cells(nuclei, serum, foreground, DistanceHeightMap())
    propagation = segment_cells(
        nuclei, serum, foreground, PropagationHeightMap(regularization=100.0)
    )
    np.testing.assert_array_equal(propagation, distance)


def cell_probability_with_border_at(x, shape=(9, 40)):
    """Object probability of two cells that meet at column ``x`` (0 there, rising 0.1 per px, at most 1)."""
    distance_to_border = np.abs(np.arange(shape[1]) - x).astype(np.float32)
    return np.broadcast_to(np.minimum(0.1 * distance_to_border, 1.0), shape).copy()


@pytest.mark.parametrize("border", [10, 22])
def test_probability_height_map_puts_the_border_where_the_model_sees_it(border):
    nuclei, serum = strip_of_two_cells()
    height_map = ProbabilityHeightMap(cell_probability_with_border_at(border), distance_weight=0.01)
    cells = segment_cells(nuclei, serum, FixedThresholdForeground(1.0, 0), height_map)
    np.testing.assert_array_equal(cells[:, :border], 4)
    np.testing.assert_array_equal(cells[:, border + 1:34], 9)


def test_distance_term_breaks_a_flat_probability_midway():
    nuclei, serum = strip_of_two_cells()
    flat = ProbabilityHeightMap(np.ones((9, 40), np.float32), distance_weight=0.01)
    foreground = FixedThresholdForeground(1.0, 0)
    np.testing.assert_array_equal(segment_cells(nuclei, serum, foreground, flat),
                                  segment_cells(nuclei, serum, foreground, DistanceHeightMap()))


def test_probability_of_another_shape_is_refused():
    nuclei, serum = strip_of_two_cells()
    with pytest.raises(ValueError, match="probability shape"):
        ProbabilityHeightMap(np.ones((9, 39)), 0.01).compute(nuclei, serum, None)


def test_cell_model_input_bins_then_normalises_each_channel():
    nuclei = np.arange(36, dtype=np.uint16).reshape(6, 6)
    model_input = cell_model_input(nuclei, np.full((6, 6), 5.0), 3, lambda image: image - image.min())
    assert model_input.shape == (2, 2, 2) and model_input.dtype == np.float32
    np.testing.assert_array_equal(model_input[..., 0], [[0, 3], [18, 21]])
    np.testing.assert_array_equal(model_input[..., 1], 0)


def test_cell_probability_is_resized_to_the_whole_image_with_aligned_pixel_centres():
    calls = []

    def predict(model_input):
        calls.append(model_input.shape)
        return np.array([[0.0, 1.0]] * (model_input.shape[0]), np.float32)

    probability = cell_probability(predict, np.zeros((9, 9)), np.zeros((9, 9)), 4, lambda image: image)
    assert calls == [(2, 2, 2)] and probability.shape == (9, 9) and probability.dtype == np.float32
    # block centres at x = 1.5 and 5.5: 0 left of the first, 1 right of the second, linear between
    np.testing.assert_allclose(probability[0], [0, 0, 0.125, 0.375, 0.625, 0.875, 1, 1, 1])
    np.testing.assert_array_equal(probability, np.broadcast_to(probability[:1], (9, 9)))  # leftover row: edge


@pytest.mark.parametrize("name", sorted(CELL_MODEL_FLIPS))
def test_flips_of_a_non_square_input_are_mirrored_back_and_averaged(name):
    """Each mirror image is predicted once and flipped back: an equivariant model gives its own output, a
    position-bound one the mean of its mirrored outputs."""
    image = np.arange(3 * 5 * 2, dtype=np.float32).reshape(3, 5, 2)
    seen = []

    def equivariant(model_input):
        seen.append(model_input.shape)
        return model_input[..., 0] ** 2
    np.testing.assert_allclose(flip_averaged(equivariant, image, CELL_MODEL_FLIPS[name]), image[..., 0] ** 2)
    assert seen == [(3, 5, 2)] * (len(CELL_MODEL_FLIPS[name]) + 1)

    corner = np.zeros((3, 5), np.float32)
    corner[0, 0] = 1.0
    mirrored = flip_averaged(lambda model_input: corner, image, CELL_MODEL_FLIPS[name])
    share = 1 / (len(CELL_MODEL_FLIPS[name]) + 1)
    assert mirrored.sum() == pytest.approx(1.0) and mirrored[0, 0] == pytest.approx(share)


def test_a_known_first_prediction_is_not_predicted_again():
    calls = []

    def predict(model_input):
        calls.append(1)
        return np.ones(model_input.shape[:2])
    averaged = flip_averaged(predict, np.zeros((2, 3, 1)), CELL_MODEL_FLIPS["flip2"], first=np.zeros((2, 3)))
    assert len(calls) == 1 and averaged.tolist() == [[0.5] * 3] * 2


@pytest.mark.parametrize("shape, factor", [((7, 5), 4), ((3, 8), 2), ((4, 4), 3)])
def test_upsampling_matches_skimage_linear_resize(shape, factor):
    from skimage.transform import resize

    from antibodies.analysis.cells import _upsampled

    image = np.random.default_rng(1).random(shape).astype(np.float32)
    expected = resize(image, (shape[0] * factor, shape[1] * factor), order=1, mode="edge", anti_aliasing=False)
    upsampled = _upsampled(image, factor)
    assert upsampled.dtype == np.float32
    np.testing.assert_allclose(upsampled, expected, atol=1e-6)


def test_mask_component_without_nucleus_stays_background():
    nuclei = np.zeros((5, 12), dtype=np.int32)
    nuclei[2, 2] = 1
    serum = np.zeros((5, 12), dtype=np.float32)
    serum[:, :5] = 5
    serum[:, 7:] = 5  # bright, but not connected to any nucleus
    cells = segment_cells(nuclei, serum, FixedThresholdForeground(1.0, 0))
    np.testing.assert_array_equal(cells[:, :5], 1)
    np.testing.assert_array_equal(cells[:, 5:], 0)


def test_nuclei_are_forced_into_the_foreground():
    nuclei = np.zeros((5, 5), dtype=np.int32)
    nuclei[1:3, 1:3] = 3
    cells = segment_cells(nuclei, np.zeros((5, 5)), FixedThresholdForeground(1.0, 0))
    np.testing.assert_array_equal(cells, nuclei)


def test_without_nuclei_there_are_no_cells():
    serum = np.full((6, 6), 10.0)
    for height_map in HEIGHT_MAPS:
        cells = segment_cells(np.zeros((6, 6), dtype=int), serum, height_map=height_map)
        np.testing.assert_array_equal(cells, 0)


def test_several_serum_channels_are_averaged():
    nuclei, serum = strip_of_two_cells()
    foreground = FixedThresholdForeground(1.0, 0)
    single = segment_cells(nuclei, serum, foreground)
    # mean of (2 * serum, 0) == serum
    double = segment_cells(nuclei, [2 * serum, np.zeros_like(serum)], foreground)
    np.testing.assert_array_equal(single, double)
    np.testing.assert_array_equal(mean_serum([serum, 3 * serum]), 2 * serum)


def test_otsu_foreground_separates_two_levels():
    serum = np.full((20, 20), 100.0)
    serum[5:15, 5:15] = 1000.0
    for log_scale in (True, False):
        mask = OtsuForeground(smoothing_sigma=0, log_scale=log_scale).find(serum)
        expected = np.zeros((20, 20), dtype=bool)
        expected[5:15, 5:15] = True
        np.testing.assert_array_equal(mask, expected)


def test_otsu_foreground_of_constant_image_is_empty():
    assert not OtsuForeground().find(np.full((8, 8), 7.0)).any()


def confluent_field_with_bright_cells():
    """80 x 80: background (100) in the last 16 columns, dim cells (300) elsewhere, bright (3000) on top.

    Nuclei (3 x 3) on a 10 px grid inside the cells.
    """
    serum = np.full((80, 80), 100.0)
    serum[:, :64] = 300.0
    serum[:30, :64] = 3000.0
    nuclei = np.zeros((80, 80), dtype=np.int32)
    centres = [(r, c) for r in range(5, 80, 10) for c in range(5, 64, 10)]
    for i, (r, c) in enumerate(centres):
        nuclei[r - 1:r + 2, c - 1:c + 2] = i + 1
    return serum, nuclei


def test_guided_foreground_keeps_dim_cells_that_plain_otsu_drops():
    serum, nuclei = confluent_field_with_bright_cells()
    expected = np.zeros(serum.shape, dtype=bool)
    expected[:, :64] = True
    assert not OtsuForeground(smoothing_sigma=0).find(serum)[30:, :64].any()
    np.testing.assert_array_equal(GuidedOtsuForeground(smoothing_sigma=0).find(serum, nuclei), expected)


def test_guided_foreground_agrees_with_otsu_on_two_level_images():
    serum = np.full((40, 40), 100.0)
    serum[5:35, 5:25] = 1000.0
    nuclei = np.zeros((40, 40), dtype=np.int32)
    nuclei[14:17, 14:17] = 1
    plain = OtsuForeground(smoothing_sigma=0).find(serum)
    np.testing.assert_array_equal(GuidedOtsuForeground(smoothing_sigma=0).find(serum, nuclei), plain)
    # without nuclei there is no guide: plain Otsu
    np.testing.assert_array_equal(GuidedOtsuForeground(smoothing_sigma=0).find(serum), plain)


def test_guided_foreground_without_far_pixels_uses_the_farthest_percent():
    serum, nuclei = confluent_field_with_bright_cells()
    serum = serum[:, :64]                      # no background column: the whole field is cells
    nuclei = nuclei[:, :64]
    mask = GuidedOtsuForeground(smoothing_sigma=0).find(serum, nuclei)
    assert mask.shape == serum.shape and mask[:30].all()


def confluent_stripes():
    """98 x 98: 7 cells, 12 px wide stripes between 2 px gaps (100); cells 0, 1, 3 bright (3000), the rest dim (300).

    Each cell's 3 x 3 nucleus sits at its top, so the pixels far from every nucleus lie inside the cells.
    """
    serum = np.full((98, 98), 100.0)
    nuclei = np.zeros((98, 98), dtype=np.int32)
    for i, left in enumerate(range(2, 98, 14)):
        serum[:, left:left + 12] = 3000.0 if i in (0, 1, 3) else 300.0
        nuclei[4:7, left + 5:left + 8] = i + 1
    return serum, nuclei


def test_guided_foreground_keeps_the_dim_cells_of_a_confluent_field():
    serum, nuclei = confluent_stripes()
    cells = serum > 100.0
    far_only = GuidedOtsuForeground(smoothing_sigma=0, envelope_radii=0).find(serum, nuclei)
    np.testing.assert_array_equal(far_only, serum > 300.0)          # the far pixels are dim cytoplasm: dim cells lost
    np.testing.assert_array_equal(GuidedOtsuForeground(smoothing_sigma=0).find(serum, nuclei), cells)


def test_rolling_ball_level_is_the_gap_level_and_keeps_a_flat_background():
    serum, _ = confluent_stripes()
    inside = serum == 300.0
    assert rolling_ball_level(serum, inside, 8) == 100.0            # a 17 px window always holds a gap
    assert rolling_ball_level(serum, inside, 5) == 300.0            # an 11 px window fits inside a 12 px cell
    flat = np.full((40, 40), 250.0)
    flat[10:20, 10:20] = 900.0
    assert rolling_ball_level(flat, flat == 250.0, 8) == 250.0


def test_fixed_threshold_foreground_is_strictly_above():
    serum = np.array([[1.0, 2.0, 3.0]])
    mask = FixedThresholdForeground(2.0, smoothing_sigma=0).find(serum)
    np.testing.assert_array_equal(mask, [[False, False, True]])


def test_segment_cells_errors():
    with pytest.raises(ValueError, match="shape"):
        segment_cells(np.zeros((4, 4), dtype=int), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="integer"):
        segment_cells(np.zeros((4, 4)), np.zeros((4, 4)))
    with pytest.raises(ValueError, match="one shape"):
        mean_serum([np.zeros((4, 4)), np.zeros((4, 5))])


def test_strategies_are_frozen():
    with pytest.raises(AttributeError):
        PropagationHeightMap().regularization = 1.0


def strip_cut_by_the_left_edge():
    """9 x 30 strip: a cell at x < 10 whose nucleus lies outside the field, then a cell with nucleus 3 at x 17..19.

    A dim border at x = 10 separates them; the model's instance 1 covers x < 10, instance 2 the second cell.
    """
    nuclei = np.zeros((9, 30), dtype=np.int32)
    nuclei[3:6, 17:20] = 3
    serum = np.full((9, 30), 10.0, dtype=np.float32)
    probability = np.ones((9, 30), dtype=np.float32)
    probability[:, 10] = 0.1
    instances = np.zeros((9, 30), dtype=np.int32)
    instances[:, :10], instances[:, 11:] = 1, 2
    return nuclei, serum, probability, instances


def test_a_cell_cut_by_the_image_edge_joins_its_neighbour_unless_seeded():
    from antibodies.analysis.cells import ModelCutCells

    nuclei, serum, probability, instances = strip_cut_by_the_left_edge()
    foreground, height_map = FixedThresholdForeground(5, 0), ProbabilityHeightMap(probability, 0.001)
    absorbed = segment_cells(nuclei, serum, foreground, height_map)
    assert np.unique(absorbed).tolist() == [3]
    seeded = segment_cells(nuclei, serum, foreground, height_map, ModelCutCells(instances, 1))
    assert np.unique(seeded[:, :10]).tolist() == [4]            # its own cell, numbered after the nuclei
    assert np.unique(seeded[:, 11:]).tolist() == [3]
    assert np.array_equal(seeded[nuclei > 0], nuclei[nuclei > 0])


def test_bordered_cut_cells_keep_a_seed_behind_a_border_and_drop_one_inside_a_cell():
    from antibodies.analysis.cells import BorderedCutCells

    nuclei, serum, probability, instances = strip_cut_by_the_left_edge()
    probability[:, [9, 11]] = 0.2                             # a valley as wide as the model draws one
    foreground = FixedThresholdForeground(5, 0)
    behind = ProbabilityHeightMap(probability, 0.001)
    kept = segment_cells(nuclei, serum, foreground, behind, BorderedCutCells(instances, 1, probability))
    assert np.unique(kept[:, :10]).tolist() == [4] and np.unique(kept[:, 11:]).tolist() == [3]
    inside = np.ones_like(probability)                        # no border: instance 1 is part of cell 3
    height_map = ProbabilityHeightMap(inside, 0.001)
    dropped = segment_cells(nuclei, serum, foreground, height_map, BorderedCutCells(instances, 1, inside))
    assert np.array_equal(dropped, segment_cells(nuclei, serum, foreground, height_map))


def test_a_seed_behind_a_border_is_judged_by_its_contact_with_the_cells_of_nuclei_only():
    from antibodies.analysis.cells import seeds_behind_a_border

    cells = np.array([[1, 1, 5, 5, 6, 6]] * 3)
    seeds = np.where(np.isin(cells, [5, 6]), cells, 0)
    probability = np.array([[.9, .9, .9, .1, .1, .1]] * 3)    # seed 5 meets cell 1 where it is bright
    kept = seeds_behind_a_border(cells, seeds, probability)
    assert np.unique(kept).tolist() == [0, 6]                 # seed 6 touches only seed 5: no contact, kept
    assert np.array_equal(seeds_behind_a_border(cells, seeds, probability, max_probability=1.0), seeds)
    assert not seeds_behind_a_border(cells, np.zeros_like(seeds), probability).any()


def test_cut_cell_seeds_come_only_from_edge_instances_without_a_nucleus():
    from antibodies.analysis.cells import cut_cell_seeds

    nuclei, _, _, instances = strip_cut_by_the_left_edge()
    mask = np.ones(nuclei.shape, bool)
    inner = np.zeros_like(instances)
    inner[2:7, 3:8] = 5                                       # no nucleus, but away from the edge
    assert not cut_cell_seeds(inner, nuclei, mask, 1).any()
    seeds = cut_cell_seeds(instances, nuclei, mask, 1)
    assert np.unique(seeds).tolist() == [0, 4]                # instance 2 holds nucleus 3: no seed
    assert not cut_cell_seeds(instances, nuclei, mask, 1, min_pixels=int((seeds > 0).sum()) + 1).any()
    assert not cut_cell_seeds(instances, nuclei, np.zeros_like(mask), 1).any()   # seeds stay in the foreground


def test_cut_cell_seeds_of_a_binned_model_cover_an_image_that_is_not_a_multiple_of_the_bins():
    from antibodies.analysis.cells import cut_cell_seeds

    instances = np.zeros((4, 4), dtype=np.int32)
    instances[:, 2:] = 1                                      # touches the right and bottom edges
    seeds = cut_cell_seeds(instances, np.zeros((10, 9), np.int32), np.ones((10, 9), bool), 2, min_pixels=1)
    assert seeds.shape == (10, 9)
    assert seeds[:, :6].max() == 0 and seeds[2:8, 6:7].min() == 1   # shrunk by 2 px from its border and the edges
    assert seeds[:, 7:].max() == 0 and seeds[8:].max() == 0
