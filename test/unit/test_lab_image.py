"""lab.image: one recipe per Debian release, told apart by name and tag."""

import pytest

from lab import config, image


def test_every_release_has_its_own_images():
    refs = {(v, r): image.tag(v, r) for v in image.VARIANTS for r in config.RELEASES}
    assert len(set(refs.values())) == len(refs)
    for (variant, release), ref in refs.items():
        assert ref.startswith(f"{config.IMAGE_PREFIX}-debian{release}-{variant}:")
        assert image.release_of(ref) == release


def test_default_release_is_12_and_the_demo_takes_the_stable_13():
    assert image.tag("base") == image.tag("base", "12")
    assert config.STABLE_RELEASE == "13"
    assert config.RELEASES["13"][0] == "trixie" and config.RELEASES["11"][0] == "bullseye"


def test_unknown_release_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"'10'.*\['11', '12', '13'\]"):
        image.tag("base", "10")


def test_recipes_follow_the_release_and_carry_publicsuffix():
    for release, (suite, python) in config.RELEASES.items():
        recipe = image._recipe("base", release)
        assert (recipe["suite"], recipe["python"]) == (suite, python)
        assert "publicsuffix" in recipe["packages"]
        assert image._wheelhouse_dir(release).name == \
            f"salt-{config.SALT_VERSION}-py{python.replace('.', '')}"
