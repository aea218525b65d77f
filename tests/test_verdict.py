from auxnas.controller.verdict import NOT_RECOMMENDED, verdict


def test_gain_in_units_of_the_replicate_noise():
    assert verdict(0.612, 0.600, noise=0.004) == "best auxiliary module: +0.0120 over Joint (3.0x noise)"
    assert verdict(0.6008, 0.600, noise=0.004).endswith("(0.2x noise, within the noise)")


def test_no_gain_is_not_recommended():
    assert verdict(0.59, 0.60, noise=0.01) == NOT_RECOMMENDED
    assert verdict(0.60, 0.60) == NOT_RECOMMENDED


def test_unknown_noise_says_how_to_measure_it():
    line = verdict(0.62, 0.60)
    assert line.startswith("best auxiliary module: +0.0200 over Joint (replicate noise unknown")
    assert "auxnas calibrate" in line


def test_nothing_to_compare_yet():
    assert verdict(None, 0.6) is None and verdict(0.6, None) is None
