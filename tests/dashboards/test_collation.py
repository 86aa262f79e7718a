from lhs.collation import name_key

NAMES = ["Ätstörningsavdelningen", "Ångestmottagningen", "Affektiv", "Öppenvård", "Zeta", "Émile"]


def test_swedish_order_ends_with_a_ring_a_umlaut_o_umlaut_and_ignores_other_accents():
    assert sorted(NAMES, key=lambda n: name_key(n, "sv")) == [
        "Affektiv",
        "Émile",
        "Zeta",
        "Ångestmottagningen",
        "Ätstörningsavdelningen",
        "Öppenvård",
    ]


def test_english_order_sorts_accented_letters_as_plain_ones():
    assert sorted(NAMES, key=lambda n: name_key(n, "en")) == [
        "Affektiv",
        "Ångestmottagningen",
        "Ätstörningsavdelningen",
        "Émile",
        "Öppenvård",
        "Zeta",
    ]
