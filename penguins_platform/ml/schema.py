"""What a penguins table must look like: columns, labels and plausible ranges.

One place for these facts keeps the cleaning code, the data checks and the served model
in agreement about what a valid row is.
"""

TARGET = "species"
NUMERIC_FEATURES = ("culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g")
CATEGORICAL_FEATURES = ("island", "sex")
FEATURES = ("island", *NUMERIC_FEATURES, "sex")
REQUIRED_COLUMNS = (TARGET, *FEATURES)

# Ordinal order of the target: Adelie=0, Chinstrap=1, Gentoo=2.
SPECIES = ("Adelie", "Chinstrap", "Gentoo")
ISLANDS = ("Biscoe", "Dream", "Torgersen")
SEXES = ("FEMALE", "MALE")

# Generous bounds around the measured Palmer penguins: a value outside is a unit or entry error.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "culmen_length_mm": (25.0, 70.0),
    "culmen_depth_mm": (10.0, 25.0),
    "flipper_length_mm": (150.0, 250.0),
    "body_mass_g": (2000.0, 7000.0),
}

# The reference program's sample request: a Gentoo.
SAMPLE_PENGUIN = {
    "island": "Biscoe",
    "culmen_length_mm": 48.6,
    "culmen_depth_mm": 16.0,
    "flipper_length_mm": 230.0,
    "body_mass_g": 5800.0,
    "sex": "MALE",
}
