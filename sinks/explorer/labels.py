"""How a value of a public view reads to a person: the codes the views hold
(``AMERICAN_INDIAN_ALASKA_NATIVE``, county FIPS ``06037``) as words ("American Indian or
Alaska Native", "Los Angeles County"). Pages and charts show the label; filters, CSV and
SQL keep the code, which is what the views hold and queries name. Pure."""

from __future__ import annotations

__all__ = ["COUNTIES", "label"]

# California's 58 counties in FIPS order: alphabetical, codes 06001, 06003, ... 06115
# (U.S. Census Bureau, ANSI/FIPS county codes for state 06).
_COUNTY_NAMES = [
    "Alameda",
    "Alpine",
    "Amador",
    "Butte",
    "Calaveras",
    "Colusa",
    "Contra Costa",
    "Del Norte",
    "El Dorado",
    "Fresno",
    "Glenn",
    "Humboldt",
    "Imperial",
    "Inyo",
    "Kern",
    "Kings",
    "Lake",
    "Lassen",
    "Los Angeles",
    "Madera",
    "Marin",
    "Mariposa",
    "Mendocino",
    "Merced",
    "Modoc",
    "Mono",
    "Monterey",
    "Napa",
    "Nevada",
    "Orange",
    "Placer",
    "Plumas",
    "Riverside",
    "Sacramento",
    "San Benito",
    "San Bernardino",
    "San Diego",
    "San Francisco",
    "San Joaquin",
    "San Luis Obispo",
    "San Mateo",
    "Santa Barbara",
    "Santa Clara",
    "Santa Cruz",
    "Shasta",
    "Sierra",
    "Siskiyou",
    "Solano",
    "Sonoma",
    "Stanislaus",
    "Sutter",
    "Tehama",
    "Trinity",
    "Tulare",
    "Tuolumne",
    "Ventura",
    "Yolo",
    "Yuba",
]
COUNTIES: dict[str, str] = {
    f"06{2 * i + 1:03d}": f"{name} County" for i, name in enumerate(_COUNTY_NAMES)
}

# codes whose words are not their spelling with spaces (c2c/events.py names the codes)
_WORDS = {
    "AMERICAN_INDIAN_ALASKA_NATIVE": "American Indian or Alaska Native",
    "BLACK_AFRICAN_AMERICAN": "Black or African American",
    "HISPANIC_LATINO": "Hispanic or Latino",
    "NATIVE_HAWAIIAN_PACIFIC_ISLANDER": "Native Hawaiian or Pacific Islander",
    "TWO_OR_MORE": "Two or more races",
    "HS_DIPLOMA": "High school diploma",
    "HS_CERTIFICATE": "High school certificate",
    "HS_EQUIVALENCY": "High school equivalency",
    "NONBINARY": "Nonbinary",
    "CAL_GRANT_A": "Cal Grant A",
    "CAL_GRANT_B": "Cal Grant B",
    "CAL_GRANT_C": "Cal Grant C",
    "PELL": "Pell Grant",
    "k12": "K-12 schools",
    "ccc": "Community colleges",
    "csu": "California State University",
    "uc": "University of California",
    "csac": "Student Aid Commission",
    "edd": "Employment Development Department",
    "ctc": "Commission on Teacher Credentialing",
}


def label(value: object) -> str:
    """``value`` as a person reads it: a known code in words, a county FIPS code as the
    county's name, any other upper-case code (``NOT_REPORTED``) in sentence case, and
    anything else (numbers, names, an unknown county code) as it is."""
    text = str(value)
    if text in _WORDS:
        return _WORDS[text]
    if text in COUNTIES:
        return COUNTIES[text]
    if text.isupper() and text.replace("_", "").isalpha() and len(text) > 2:
        return text.replace("_", " ").capitalize()
    return text
