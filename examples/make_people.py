"""Write a made-up HR export, `examples/people.csv`, and its teams, `examples/teams.csv`, to try Roster on.

The rows look like a real export: names with accents, apostrophes and hyphens, titles and locations
with commas in them (so the CSV needs quoting), and some empty fields. The output is the same on every
run for the same arguments: the generator has a fixed seed. The teams are one per department and one
per location, each listing its members' employee ids separated by `;` (as a group job's `members:` reads).

    python examples/make_people.py [--rows 5000] [--out examples/people.csv] [--seed 2024]
"""

from __future__ import annotations

import argparse
import csv
import random
import unicodedata
from pathlib import Path

COLUMNS = (
    "employee_id",
    "given_name",
    "family_name",
    "email",
    "department",
    "title",
    "manager_id",
    "phone",
    "location",
    "employment_status",
)

GIVEN_NAMES = (
    "Aarav", "Adaeze", "Ahmed", "Aiko", "Alejandro", "Amélie", "Ana", "Andrzej", "Anne-Marie", "Astrid",
    "Beatriz", "Björn", "Camille", "Carlos", "Chloé", "Chen", "Dagný", "Daniel", "David", "Đorđe",
    "Elena", "Émile", "Emma", "Fatima", "François", "Françoise", "Freya", "Grace", "Hannah", "Hélène",
    "Ingrid", "Ivan", "James", "Jean-Luc", "Jiří", "José", "Jürgen", "Kai", "Kateřina", "Laura",
    "Léa", "Liam", "Łukasz", "Maria", "Mary-Kate", "Mateo", "Mei", "Mohammed", "Ngozi", "Noah",
    "Olivia", "Ólafur", "Oscar", "Priya", "Rafael", "Renée", "Sakura", "Samuel", "Sarah", "Siobhán",
    "Søren", "Sophie", "Thomas", "Tomás", "Wei", "Yusuf", "Zoë", "Zoltán",
)  # fmt: skip

FAMILY_NAMES = (
    "Ångström", "Andersen", "Brontë", "Brown", "Çelik", "Chen", "D'Angelo", "de la Cruz", "Dvořák",
    "Fernández", "García", "García-Márquez", "Gößmann", "Hernández", "Ivanova", "Jørgensen", "Kim",
    "Kowalski", "Kühn", "Lefèvre", "Li", "MacDonald", "Martin", "Mbeki", "Müller", "Nakamura",
    "Nguyễn", "Novák", "Nuñez", "O'Brien", "O'Connor", "Okafor", "Olsen", "Patel", "Rossi",
    "Schröder", "Singh", "Smith", "Smith-Jones", "Šimić", "Tanaka", "Taylor", "van der Berg",
    "Wiśniewski", "Williams", "Wilson", "Yilmaz", "Zhang",
)  # fmt: skip

DEPARTMENTS = {
    "Engineering": ("Software Engineer", "Senior Software Engineer", "Staff Engineer", "Engineering Manager"),
    "Sales": ("Account Executive", "Sales Development Representative", "Director, Sales"),
    "Marketing": ("Marketing Specialist", "Content Writer", "Manager, Brand & Communications"),
    "Finance": ("Accountant", "Financial Analyst", "Controller"),
    "People": ("HR Business Partner", "Recruiter", "Head of People"),
    "Support": ("Support Engineer", "Manager, Customer Success", "Support Specialist"),
    "Legal": ("Counsel", "Paralegal", "VP, Legal & Compliance"),
    "Research & Development": ("Research Scientist", "Lab Technician", "Principal Researcher"),
}

LOCATIONS = (
    "London",
    "Zürich",
    "Kraków",
    "São Paulo",
    "Montréal",
    "New York, NY",
    "Austin, TX",
    "Berlin",
    "Tokyo",
    "Remote",
)

# Letters that Unicode does not decompose into a base letter and marks.
_ASCII_FOR = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ß": "ss", "æ": "ae", "œ": "oe"}
)


def ascii_part(name: str) -> str:
    """The lowercase ASCII form of a name for an email: `Müller` -> `muller`, `O'Brien` -> `obrien`."""
    decomposed = unicodedata.normalize("NFKD", name.translate(_ASCII_FOR))
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return "".join(char for char in plain.lower() if char.isascii() and (char.isalnum() or char == "-"))


def make_rows(count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    emails: set[str] = set()
    managers: list[str] = []
    for number in range(1, count + 1):
        employee_id = f"E{number:05d}"
        given, family = rng.choice(GIVEN_NAMES), rng.choice(FAMILY_NAMES)
        local = f"{ascii_part(given)}.{ascii_part(family)}"
        email, suffix = f"{local}@example.org", 1
        while email in emails:
            suffix += 1
            email = f"{local}{suffix}@example.org"
        emails.add(email)
        department = rng.choice(list(DEPARTMENTS))
        # The first people have no manager (the top of the tree); the others report to someone earlier.
        manager_id = "" if number <= 3 or rng.random() < 0.02 else rng.choice(managers)
        if number <= 50 or rng.random() < 0.05:
            managers.append(employee_id)
        phone = (
            "" if rng.random() < 0.25 else f"+1 555 {rng.randrange(100, 1000):03d} {rng.randrange(10000):04d}"
        )
        rows.append(
            {
                "employee_id": employee_id,
                "given_name": given,
                "family_name": family,
                "email": email,
                "department": department,
                "title": "" if rng.random() < 0.03 else rng.choice(DEPARTMENTS[department]),
                "manager_id": manager_id,
                "phone": phone,
                "location": rng.choice(LOCATIONS),
                "employment_status": "Leave" if rng.random() < 0.04 else "Active",
            }
        )
    return rows


def write_people(path: Path, count: int, seed: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(make_rows(count, seed))


def write_teams(path: Path, people: list[dict[str, str]]) -> None:
    teams: dict[str, tuple[str, list[str]]] = {}
    for person in people:
        for kind, value in (("dept", person["department"]), ("site", person["location"])):
            if value:
                slug = "-".join(ascii_part(word) for word in value.replace(",", " ").split())
                label = f"{value} ({'department' if kind == 'dept' else 'site'})"
                teams.setdefault(f"{kind}-{slug}", (label, []))[1].append(person["employee_id"])
    with path.open("w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(("team_id", "name", "members"))
        for team_id, (name, members) in sorted(teams.items()):
            writer.writerow((team_id, name, ";".join(members)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a made-up HR export as CSV.")
    parser.add_argument("--rows", type=int, default=5000, help="how many people (default 5000)")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("people.csv"), help="where to write it"
    )
    parser.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error("--rows must be 0 or more")
    write_people(args.out, args.rows, args.seed)
    teams = args.out.with_name("teams.csv")
    write_teams(teams, make_rows(args.rows, args.seed))
    print(f"wrote {args.rows} people to {args.out} and their teams to {teams}")


if __name__ == "__main__":
    main()
