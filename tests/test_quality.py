"""Peak matching against planted truth (quality.py): one-to-one, same panel, within the radius."""

import numpy as np

from peaknet_pipeline.quality import MATCH_RADIUS_PX, PeakTally, match_counts


def peaks(*rows):
    return np.array(rows, np.float32).reshape(-1, 3)


def test_one_to_one_within_the_radius():
    truth = peaks([0, 10, 10], [0, 30, 30])
    assert match_counts(peaks([0, 10.5, 10.5], [0, 30, 31.4]), truth) == (2, 0, 0)
    # Two found peaks near one true peak: one matches, the other is a false positive.
    assert match_counts(peaks([0, 10, 10.2], [0, 10.2, 10]), peaks([0, 10, 10])) == (1, 1, 0)
    assert match_counts(peaks([0, 10, 10 + MATCH_RADIUS_PX + 0.01]), peaks([0, 10, 10])) == (0, 1, 1)
    assert match_counts(peaks([0, 10, 10 + MATCH_RADIUS_PX]), peaks([0, 10, 10])) == (1, 0, 0)


def test_the_panel_and_both_coordinates_count():
    assert match_counts(peaks([1, 10, 10]), peaks([0, 10, 10])) == (0, 1, 1)
    assert match_counts(peaks([0, 12, 10]), peaks([0, 10, 10])) == (0, 1, 1)  # y off by 2
    assert match_counts(peaks([0, 10, 12]), peaks([0, 10, 10])) == (0, 1, 1)  # x off by 2


def test_assignment_maximises_matches_rather_than_taking_the_nearest_first():
    # Found A is nearest to true 1, but true 1 is also within reach of found B, which only reaches true 1;
    # the one-to-one assignment gives A to true 0 and B to true 1.
    found = peaks([0, 10, 11.0], [0, 10, 12.2])
    truth = peaks([0, 10, 9.8], [0, 10, 11.1])
    assert match_counts(found, truth) == (2, 0, 0)


def test_tally_sums_frames_and_reports_precision_recall_f1():
    tally = PeakTally()
    tally.add_frame(peaks([0, 10, 10], [0, 50, 50]), peaks([0, 10, 10]))  # 1 tp, 1 fp
    tally.add_frame(peaks(), peaks([0, 20, 20]))  # 1 fn
    summary = tally.summary()
    assert (summary["frames"], summary["precision"], summary["recall"]) == (2, 0.5, 0.5)
    assert summary["f1"] == 0.5
    other = PeakTally()
    other.merge(tally.counts())
    assert other.counts() == tally.counts()
