"""A synthetic California cohort flow: people and what happens to them, as plain data.

:func:`simulate_person` turns (seed, index) into one :class:`Life`: who the person is and a
timeline of true facts (K-12 years, completion, college terms, awards, aid, wages,
credentials, opt-outs). Each person draws from a random generator seeded by (seed, index),
so any person can be generated alone, in any order, and the same seed gives the same
people. Rates are close to California's published ones (college-going about 62% within 16
months, mostly to community colleges). Nothing here knows about files or noise.
"""

from __future__ import annotations

import datetime
import random
from dataclasses import dataclass, field

from producers.synth.names import NamePool, zipf_names

__all__ = [
    "Award",
    "Credential",
    "Enrollment",
    "Life",
    "Person",
    "SynthConfig",
    "Wage",
    "simulate_person",
]

FIRST_FEMALE = (
    "María",
    "Sofía",
    "Isabella",
    "Camila",
    "Emily",
    "Olivia",
    "Mia",
    "Ava",
    "Sophia",
    "Chloe",
    "Aaliyah",
    "Guadalupe",
    "Elizabeth",
    "Jennifer",
    "Katherine",
    "Margaret",
    "Samantha",
    "Ximena",
    "Valeria",
    "Leilani",
    "Mei",
    "Priya",
    "Zoë",
    "Hannah",
    "Ana",
    "Daniela",
    "Jasmine",
    "Destiny",
    "Natalie",
    "Grace",
    "Abigail",
    "Fatima",
    "Yesenia",
    "Lucía",
    "Thảo",
)
FIRST_MALE = (
    "José",
    "Juan",
    "Daniel",
    "William",
    "Robert",
    "James",
    "Ethan",
    "Liam",
    "Noah",
    "Luis",
    "Ángel",
    "Jesús",
    "Michael",
    "Christopher",
    "Alejandro",
    "Francisco",
    "Richard",
    "Anthony",
    "Joseph",
    "Alexander",
    "Diego",
    "Mateo",
    "Kevin",
    "Brandon",
    "Jayden",
    "Minh",
    "Arjun",
    "Omar",
    "Isaac",
    "Adrián",
    "Carlos",
    "Miguel",
    "Andrew",
    "Tyler",
    "Kenji",
)
SURNAMES = (
    "García",
    "Hernández",
    "López",
    "Martínez",
    "Rodríguez",
    "González",
    "Pérez",
    "Sánchez",
    "Ramírez",
    "Torres",
    "Flores",
    "Rivera",
    "Gómez",
    "Díaz",
    "Reyes",
    "Cruz",
    "Morales",
    "Ortiz",
    "Gutiérrez",
    "Chávez",
    "Ramos",
    "Ruiz",
    "Alvarez",
    "Mendoza",
    "Castillo",
    "Jiménez",
    "Vásquez",
    "Romero",
    "Herrera",
    "Medina",
    "Aguilar",
    "Vargas",
    "Guzmán",
    "Nguyen",
    "Tran",
    "Le",
    "Pham",
    "Kim",
    "Park",
    "Lee",
    "Wang",
    "Chen",
    "Li",
    "Zhang",
    "Liu",
    "Wong",
    "Patel",
    "Singh",
    "Kaur",
    "Shah",
    "Santos",
    "Reyes",
    "Dela Cruz",
    "Bautista",
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Martin",
    "Jackson",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Hill",
    "Green",
    "Adams",
    "Baker",
    "Nelson",
    "Carter",
    "Mitchell",
    "Roberts",
    "Turner",
    "Phillips",
    "Campbell",
    "Parker",
    "Evans",
    "Edwards",
    "Collins",
    "Stewart",
    "Murphy",
    "Cook",
    "Rogers",
    "O'Brien",
    "Morgan",
    "Peterson",
    "Cooper",
    "Reed",
    "Bailey",
    "Bell",
    "Kelly",
    "Howard",
    "Ward",
    "Cox",
    "Washington",
    "Jefferson",
    "Okafor",
    "Haddad",
    "Hussain",
    "Yamamoto",
    "Tanaka",
    "Sato",
    "Müller",
    "Schmidt",
    "Novak",
    "Kowalski",
    "Ivanov",
    "Petrosyan",
    "Hakobyan",
    "Sarkisian",
)
# (symbol, share): California's public-school enrollment, roughly.
RACE = (
    ("HISPANIC_LATINO", 0.56),
    ("WHITE", 0.20),
    ("ASIAN", 0.10),
    ("FILIPINO", 0.02),
    ("BLACK_AFRICAN_AMERICAN", 0.05),
    ("TWO_OR_MORE", 0.04),
    ("AMERICAN_INDIAN_ALASKA_NATIVE", 0.005),
    ("NATIVE_HAWAIIAN_PACIFIC_ISLANDER", 0.004),
    ("NOT_REPORTED", 0.021),
)
# (FIPS, share, first ZIP of a range): the largest counties, then the rest.
COUNTIES = (
    ("06037", 0.25, 90001),
    ("06073", 0.08, 91901),
    ("06059", 0.08, 92602),
    ("06065", 0.06, 92201),
    ("06071", 0.06, 91701),
    ("06085", 0.05, 94301),
    ("06001", 0.04, 94501),
    ("06067", 0.04, 95608),
    ("06013", 0.03, 94505),
    ("06019", 0.03, 93601),
    ("06075", 0.02, 94102),
    ("06029", 0.02, 93203),
    ("06111", 0.02, 91320),
    ("06077", 0.02, 95201),
    ("06099", 0.01, 95307),
    ("06083", 0.01, 93013),
    ("06107", 0.01, 93201),
    ("06023", 0.27, 95501),
)
PROGRAMS = (
    "11.0701",
    "52.0201",
    "26.0101",
    "14.0901",
    "51.3801",
    "13.1202",
    "42.0101",
    "45.1001",
    "24.0101",
    "27.0101",
    "40.0801",
    "50.0702",
    "43.0104",
    "51.0801",
    "52.0301",
    "47.0604",
    "12.0500",
    "46.0302",
)
CCC_COLLEGES = tuple(f"{n:03d}" for n in range(111, 227))  # 116 colleges
CSU_CAMPUSES = (
    "BA",
    "CH",
    "CI",
    "DH",
    "EB",
    "FR",
    "FU",
    "HU",
    "LB",
    "LA",
    "MA",
    "MB",
    "NO",
    "PO",
    "SA",
    "SB",
    "SD",
    "SF",
    "SJ",
    "SL",
    "SM",
    "SO",
    "ST",
)
UC_CAMPUSES = ("BK", "DV", "IR", "LA", "MC", "RV", "SD", "SF", "SB", "SC")


@dataclass(frozen=True)
class SynthConfig:
    """What to simulate. Noise rates live in producers.synth.noise.NoiseConfig."""

    people: int
    seed: int = 0
    first_class: int = 2016
    classes: int = 4
    end_year: int = 2025
    twin_rate: float = 0.01
    shared_ssn_rate: float = 0.002
    optout_rate: float = 0.003
    # Profiles (producers.synth.profiles) change these; at these defaults the people are
    # those of the first synth, draw for draw.
    married_rate: float = 0.15  # of women, who take a new surname some years after school
    household_rate: float = 0.0  # shares surname and address with the person before
    move_rate: float = 0.0  # moves to another ZIP some year after school
    names: str = "small"  # "small": 35 x 126 names; "zipf": long lists, Zipf-like weights

    @property
    def present(self) -> datetime.date:
        """The simulation's present: no record is dated later (the academic year that
        starts in ``end_year`` ends with awards in June of the next). A producer checking
        dates against today (c2c.validation.DATE_RULES) takes every record when its today
        is this or later: `c2c replay` of a folder whose present is still to come checks
        its dates as of the present (producers.files.folder_today)."""
        return datetime.date(self.end_year + 1, 6, 30)


@dataclass(frozen=True)
class Person:
    person_id: str
    first_name: str
    middle_name: str | None
    last_name: str
    married_name: str | None
    married_year: int | None
    sex: str
    birth_date: datetime.date
    ssn: str | None
    itin: str | None
    ssid: str
    zip: str
    county_fips: str
    race: str
    foster_youth: bool
    homeless: bool
    disadvantaged: bool
    english_learner: bool
    class_year: int
    moved_zip: str | None = None
    moved_year: int | None = None


@dataclass(frozen=True)
class Enrollment:
    segment: str  # k12, ccc, csu, uc
    institution: str
    academic_year: int
    term: str  # FALL, WINTER, SPRING, ANNUAL
    start: datetime.date
    grade: str | None = None
    program: str | None = None
    first_time: bool | None = None


@dataclass(frozen=True)
class Award:
    segment: str
    institution: str
    level: str
    date: datetime.date
    program: str | None = None


@dataclass(frozen=True)
class Aid:
    program: str
    award_year: int
    amount_cents: int
    institution: str


@dataclass(frozen=True)
class Wage:
    year: int
    quarter: int
    employer: str
    naics: str
    cents: int


@dataclass(frozen=True)
class Credential:
    kind: str
    date: datetime.date
    institution: str | None


@dataclass(frozen=True)
class OptOut:
    request_id: str
    requested: datetime.date
    revoked: datetime.date | None


@dataclass
class Life:
    person: Person
    enrollments: list[Enrollment] = field(default_factory=list)
    awards: list[Award] = field(default_factory=list)
    aid: list[Aid] = field(default_factory=list)
    wages: list[Wage] = field(default_factory=list)
    credentials: list[Credential] = field(default_factory=list)
    optout: OptOut | None = None
    hs_completion: Award | None = None


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random() * sum(share for _, share in weighted)
    for value, share in weighted:
        roll -= share
        if roll <= 0:
            return value
    return weighted[-1][0]


def _digits(rng: random.Random, count: int) -> str:
    return str(rng.randrange(10 ** (count - 1), 10**count))


def _base(config: SynthConfig, index: int) -> tuple[random.Random, Person]:
    rng = random.Random(f"c2c-synth:{config.seed}:{index}")
    sex = "FEMALE" if rng.random() < 0.49 else ("MALE" if rng.random() < 0.98 else "NONBINARY")
    names = FIRST_FEMALE if sex == "FEMALE" else FIRST_MALE
    class_year = config.first_class + index % config.classes
    born = datetime.date(class_year - 18, 9, 1) + datetime.timedelta(days=rng.randrange(365))
    last = rng.choice(SURNAMES)
    if rng.random() < 0.06:
        last = f"{last}-{rng.choice(SURNAMES)}"
    county = rng.choices(COUNTIES, weights=[c[1] for c in COUNTIES])[0]
    no_ssn = rng.random() < 0.04
    person = Person(
        person_id=f"T{index:09d}",
        first_name=rng.choice(names),
        middle_name=rng.choice(names) if rng.random() < 0.4 else None,
        last_name=last,
        married_name=(
            rng.choice(SURNAMES) if sex == "FEMALE" and rng.random() < config.married_rate else None
        ),
        married_year=class_year + rng.randrange(3, 9),
        sex=sex,
        birth_date=born,
        ssn=None if no_ssn else _digits(rng, 9),
        itin=("9" + _digits(rng, 8)) if no_ssn and rng.random() < 0.5 else None,
        ssid=_digits(rng, 10),
        zip=f"{county[2] + rng.randrange(90):05d}",
        county_fips=county[0],
        race=_pick(rng, RACE),
        foster_youth=rng.random() < 0.005,
        homeless=rng.random() < 0.03,
        disadvantaged=rng.random() < 0.6,
        english_learner=rng.random() < 0.17,
        class_year=class_year,
    )
    if config.names == "zipf":
        person = _zipf_named(config, index, person)
    return rng, person


def _pools(sex: str) -> tuple[NamePool, NamePool]:
    first = FIRST_FEMALE if sex == "FEMALE" else FIRST_MALE
    return (
        zipf_names(first, 4_000, 0.75, f"first-{sex == 'FEMALE'}"),
        zipf_names(SURNAMES, 30_000, 0.85, "last"),
    )


def _zipf_named(config: SynthConfig, index: int, person: Person) -> Person:
    """``person`` with names drawn from long Zipf-weighted lists (own generator, so the
    rest of the person is as with the small lists)."""
    rng = random.Random(f"c2c-names:{config.seed}:{index}")
    firsts, lasts = _pools(person.sex)
    last = lasts.draw(rng)
    if rng.random() < 0.06:
        last = f"{last}-{lasts.draw(rng)}"
    return Person(
        **{
            **person.__dict__,
            "first_name": firsts.draw(rng),
            "middle_name": firsts.draw(rng) if person.middle_name else None,
            "last_name": last,
            "married_name": lasts.draw(rng) if person.married_name else None,
        }
    )


def _other_first_name(rng: random.Random, config: SynthConfig, sex: str, taken: str) -> str:
    if config.names == "zipf":
        pool = _pools(sex)[0]
        while (name := pool.draw(rng)) == taken:
            pass
        return name
    names = FIRST_FEMALE if sex == "FEMALE" else FIRST_MALE
    return rng.choice([n for n in names if n != taken])


def simulate_person(config: SynthConfig, index: int) -> Life:
    """The life of person ``index``: deterministic for (config.seed, index)."""
    rng, person = _base(config, index)
    # A twin shares birth date, surname, address and school with the person before.
    if index > 0 and random.Random(f"c2c-twin:{config.seed}:{index}").random() < config.twin_rate:
        _, sibling = _base(config, index - 1)
        first = _other_first_name(rng, config, person.sex, sibling.first_name)
        person = Person(
            **{
                **person.__dict__,
                "birth_date": sibling.birth_date,
                "last_name": sibling.last_name,
                "zip": sibling.zip,
                "county_fips": sibling.county_fips,
                "race": sibling.race,
                "class_year": sibling.class_year,
                "first_name": first,
            }
        )
    else:
        person = _household_and_move(config, index, person)
    if index > 0 and rng.random() < config.shared_ssn_rate:
        _, other = _base(config, index - 1)
        if other.ssn is not None:
            person = Person(**{**person.__dict__, "ssn": other.ssn})
    life = Life(person=person)
    _k12(rng, life)
    if life.hs_completion is not None or rng.random() < 0.15:
        _college(rng, life, config)
    _wages(rng, life, config)
    _credentials(rng, life, config)
    if rng.random() < config.optout_rate:
        requested = datetime.date(config.end_year, 1, 1) - datetime.timedelta(
            days=rng.randrange(700)
        )
        revoked = (
            requested + datetime.timedelta(days=rng.randrange(30, 200))
            if (rng.random() < 0.1)
            else None
        )
        life.optout = OptOut(f"OPT-{person.person_id}", requested, revoked)
    return life


def _household_and_move(config: SynthConfig, index: int, person: Person) -> Person:
    """A household member shares surname and address with the person before (another
    birth date, first name and SSN); a mover writes another ZIP after moving. Own
    generators, drawn only at rates above 0."""
    rng = random.Random(f"c2c-household:{config.seed}:{index}")
    if index > 0 and config.household_rate > 0 and rng.random() < config.household_rate:
        _, other = _base(config, index - 1)
        first = person.first_name
        if first == other.first_name:
            first = _other_first_name(rng, config, person.sex, other.first_name)
        person = Person(
            **{
                **person.__dict__,
                "first_name": first,
                "last_name": other.last_name,
                "zip": other.zip,
                "county_fips": other.county_fips,
                "race": other.race,
            }
        )
    if config.move_rate > 0 and rng.random() < config.move_rate:
        moved = f"{(int(person.zip) + rng.randrange(1, 400)) % 100000:05d}"
        person = Person(
            **{
                **person.__dict__,
                "moved_zip": moved,
                "moved_year": person.class_year + rng.randrange(0, 7),
            }
        )
    return person


def _k12(rng: random.Random, life: Life) -> None:
    person = life.person
    school = f"{rng.randrange(1, 58):02d}{rng.randrange(10000, 99999)}"
    for grade in (9, 10, 11, 12):
        year = person.class_year - (13 - grade)
        start = datetime.date(year, 8, rng.randrange(10, 25))
        life.enrollments.append(
            Enrollment("k12", school, year, "ANNUAL", start, grade=f"{grade:02d}")
        )
    if rng.random() < 0.86:
        level = "HS_DIPLOMA" if rng.random() < 0.97 else "HS_CERTIFICATE"
        life.hs_completion = Award(
            "k12", school, level, datetime.date(person.class_year, 6, rng.randrange(3, 16))
        )


_TERMS = {"ccc": ("FALL", "SPRING"), "csu": ("FALL", "SPRING"), "uc": ("FALL", "WINTER", "SPRING")}
_TERM_START = {"FALL": (8, 24), "WINTER": (1, 6), "SPRING": (1, 22)}


def _term_date(academic_year: int, term: str) -> datetime.date:
    month, day = _TERM_START[term]
    return datetime.date(academic_year + (0 if term == "FALL" else 1), month, day)


def _college(rng: random.Random, life: Life, config: SynthConfig) -> None:
    person = life.person
    roll = rng.random()
    year = person.class_year
    if life.hs_completion is None:
        start_year, start_term, segment = year + rng.randrange(1, 4), "FALL", "ccc"
    elif roll < 0.55:
        start_year, start_term = year, "FALL"
        segment = _pick(rng, (("ccc", 0.52), ("csu", 0.28), ("uc", 0.20)))
    elif roll < 0.58:
        start_year, start_term, segment = year, "SPRING", "ccc"  # within 12 months
    elif roll < 0.62:
        start_year, start_term, segment = year + 1, "FALL", "ccc"  # 12 to 16 months
    elif roll < 0.68:
        start_year, start_term, segment = year + rng.randrange(2, 6), "FALL", "ccc"
    else:
        return
    first_time = True
    current: str | None = segment
    while current is not None and start_year <= config.end_year:
        current, start_year = _attend(
            rng, life, current, start_year, start_term, first_time, config
        )
        start_term, first_time = "FALL", False


def _institution(rng: random.Random, segment: str) -> str:
    return rng.choice({"ccc": CCC_COLLEGES, "csu": CSU_CAMPUSES, "uc": UC_CAMPUSES}[segment])


def _attend(
    rng: random.Random,
    life: Life,
    segment: str,
    year: int,
    first_term: str,
    first_time: bool,
    config: SynthConfig,
) -> tuple[str | None, int]:
    """Terms at one segment until an award, transfer or stop; returns where next."""
    institution = _institution(rng, segment)
    program = rng.choice(PROGRAMS)
    persistence = {"ccc": 0.68, "csu": 0.86, "uc": 0.92}[segment]
    aided = rng.random() < 0.5
    for years_in in range(1, 9):
        if year > config.end_year:
            return None, year
        terms = _TERMS[segment]
        if years_in == 1 and first_term != "FALL":
            terms = tuple(t for t in terms if t != "FALL")
        for position, term in enumerate(terms):
            life.enrollments.append(
                Enrollment(
                    segment,
                    institution,
                    year,
                    term,
                    _term_date(year, term),
                    program=program,
                    first_time=first_time and years_in == 1 and position == 0,
                )
            )
        if aided or rng.random() < 0.15:
            program_name, cents = _aid(rng, segment)
            life.aid.append(Aid(program_name, year, cents, institution))
        award_date = datetime.date(year + 1, 6, rng.randrange(1, 20))
        if segment == "ccc" and years_in >= 2:
            if rng.random() < 0.16:
                life.awards.append(Award("ccc", institution, "ASSOCIATE", award_date, program))
                if rng.random() < 0.5:
                    return ("csu" if rng.random() < 0.75 else "uc"), year + 1
                return None, year
            if rng.random() < 0.05:
                life.awards.append(Award("ccc", institution, "CERTIFICATE", award_date, program))
        if segment in ("csu", "uc") and years_in >= 4 - (0 if first_time else 2):
            chance = {"csu": 0.55, "uc": 0.8}[segment] if years_in <= 4 else 0.45
            if rng.random() < chance:
                life.awards.append(Award(segment, institution, "BACHELOR", award_date, program))
                return None, year
        if rng.random() > persistence:
            return None, year
        year += 1
    return None, year


def _aid(rng: random.Random, segment: str) -> tuple[str, int]:
    if segment == "ccc":
        program = _pick(rng, (("CAL_GRANT_B", 0.45), ("CAL_GRANT_C", 0.15), ("PELL", 0.4)))
    else:
        program = _pick(
            rng,
            (
                ("CAL_GRANT_A", 0.4),
                ("CAL_GRANT_B", 0.3),
                ("MIDDLE_CLASS_SCHOLARSHIP", 0.15),
                ("PELL", 0.15),
            ),
        )
    base = {
        "CAL_GRANT_A": 570000,
        "CAL_GRANT_B": 164800,
        "CAL_GRANT_C": 109400,
        "MIDDLE_CLASS_SCHOLARSHIP": 215000,
        "PELL": 739500,
    }[program]
    return program, base - rng.randrange(0, base // 4) // 100 * 100


def _wages(rng: random.Random, life: Life, config: SynthConfig) -> None:
    person = life.person
    if person.ssn is None:
        return  # wage records carry SSNs only
    enrolled_quarters = {
        (e.start.year, (e.start.month - 1) // 3 + 1) for e in life.enrollments if e.segment != "k12"
    }
    awards = sorted(life.awards, key=lambda a: a.date)
    employer = f"{rng.randrange(10**9):010d}"
    naics = rng.choice(
        (
            "722511",
            "445110",
            "611310",
            "621111",
            "541512",
            "236220",
            "452210",
            "561320",
            "623110",
            "611110",
        )
    )
    for year in range(person.class_year, config.end_year + 1):
        for quarter in (1, 2, 3, 4):
            if (year, quarter) < (person.class_year, 3):
                continue
            done = [
                a for a in awards if (a.date.year, (a.date.month - 1) // 3 + 1) < (year, quarter)
            ]
            level = done[-1].level if done else "NONE"
            if (year, quarter) in enrolled_quarters:
                chance, base = 0.45, 420000
            else:
                chance = {
                    "NONE": 0.62,
                    "CERTIFICATE": 0.76,
                    "ASSOCIATE": 0.79,
                    "BACHELOR": 0.84,
                }.get(level, 0.84)
                base = {
                    "NONE": 720000,
                    "CERTIFICATE": 880000,
                    "ASSOCIATE": 960000,
                    "BACHELOR": 1450000,
                }.get(level, 1450000)
            if rng.random() >= chance:
                continue
            if rng.random() < 0.08:  # a change of job
                employer = f"{rng.randrange(10**9):010d}"
            growth = 1 + 0.03 * (year - person.class_year)
            cents = int(base * growth * rng.lognormvariate(0, 0.35))
            life.wages.append(Wage(year, quarter, employer, naics, cents))


def _credentials(rng: random.Random, life: Life, config: SynthConfig) -> None:
    bachelors = [a for a in life.awards if a.level == "BACHELOR"]
    if bachelors and rng.random() < 0.06:
        earned = bachelors[0]
        issued = datetime.date(earned.date.year + 1, 7, rng.randrange(1, 28))
        if issued.year <= config.end_year:
            kind = _pick(
                rng,
                (
                    ("PRELIMINARY_MULTIPLE_SUBJECT", 0.45),
                    ("PRELIMINARY_SINGLE_SUBJECT", 0.35),
                    ("PRELIMINARY_EDUCATION_SPECIALIST", 0.2),
                ),
            )
            life.credentials.append(Credential(kind, issued, earned.institution))
    elif not bachelors and rng.random() < 0.004:
        issued = datetime.date(config.end_year, 8, rng.randrange(1, 28))
        life.credentials.append(Credential("INTERN", issued, None))
