#!/usr/bin/env python3
"""Run the scim2-tester compliance suite with staff records the service's rules accept.

    $SCIM_VENV/bin/python scripts/scim/compliance.py --url URL --token TOKEN \
        [--organisations RXX,RYY] [--codes samples/codes] [--domain nhs.net]

scim2-tester fills Users with random UUIDs (userName ``uuid@uuid.com``, UUID names and
organisation codes), which `push-connector serve` refuses as a file row would be refused
(400 ``invalidValue``). A real identity provider sends valid staff records, and the suite
checks protocol behaviour, so this driver replaces the tester's value generator
(``scim2_tester.filling.generate_random_value``, and every module that imported it by name)
with one that gives, per attribute, a value the rules accept and that is still random (keys
unique per call):

- ``userName``: ``given.family.<random>@<domain>`` (the first ``[service] domains``);
- ``externalId``: an organisation code and random digits (``RXX482913``);
- ``name.givenName`` / ``familyName``: letters, apostrophes and hyphens only;
- ``name.honorificPrefix``: a title from ``titles.txt``; the NHS extension's
  ``clinicalRoles`` / ``clinicalSpecialities`` / ``workAreas``: values of their code lists;
- ``phoneNumbers``: ``work`` / ``mobile`` / ``fax`` with a UK mobile number in E.164 (the
  form the service stores: ``+4479…``, valid for every kind, never the 07700 900xxx drama
  range), ``pager`` with bleep digits;
- the extension's ``organisation``: one of ``--organisations``; ``organisationUnit``: the
  organisation the last generated User names (a unit is set up in the portal, so a User
  is in its organisation itself), so the pair never asks for a move;
- ``displayName``, ``title`` (job title), ``notes``: plain words with a random number.

Everything else is left to the original generator. Then it runs the same entry
``scim2 --url URL test`` runs (``scim2_cli.cli``), so the output is the CLI's, one line per
check, and the exit status is 0 only when every check passed.
"""

import argparse
import os
import random
import sys
from pathlib import Path

import scim2_tester.checkers.patch_add as patch_add
import scim2_tester.checkers.patch_replace as patch_replace
import scim2_tester.filling as filling
from scim2_cli import cli

ROOT = Path(__file__).resolve().parents[2]

GIVEN = ["Zoe", "Aisha", "Liam", "Siobhan", "Rhys", "Mary-Jane", "Oluwaseun", "Priya", "Tom"]
FAMILY = ["Quinn", "O'Brien", "Smith-Jones", "Okafor", "Patel", "MacLeod", "Evans", "Nguyen"]
WORDS = ["Staff Nurse", "Ward Clerk", "Consultant", "Porter", "Pharmacist", "Midwife"]
PHONE_TYPES = ["work", "mobile", "fax", "pager"]


def read_codes(path: Path) -> list[str]:
    """A code list: one value a line, blank lines and ``#`` comments skipped."""
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def digits(n: int) -> str:
    return "".join(random.choice("0123456789") for _ in range(n))


def mobile() -> str:
    """A UK mobile number, E.164 (the form the service stores): 079 and a digit of
    [024-9] (ranges allocated to mobiles), then seven random digits."""
    return "+4479" + random.choice("02456789") + digits(7)


class Generator:
    """Valid values for the attributes the service's rules check."""

    def __init__(self, organisations: list[str], codes: Path, domain: str):
        self.organisations = organisations
        self.domain = domain
        self.lists = {
            "honorificPrefix": read_codes(codes / "titles.txt"),
            "clinicalRoles": read_codes(codes / "clinical-roles.txt"),
            "clinicalSpecialities": read_codes(codes / "clinical-specialities.txt"),
            "workAreas": read_codes(codes / "work-areas.txt"),
        }
        # The organisation of the User being filled (organisation comes before
        # organisationUnit in the schema) or last created (for a PATCH of the unit).
        self.organisation = organisations[0]
        # The kind of the phoneNumbers entry whose value was generated last.
        self.phone_type = "mobile"
        self.original = filling.generate_random_value

    def value(self, path: str, model: str) -> object | None:
        """The value for an attribute (its last path segment, and the model holding it),
        or None to leave it to the original generator."""
        name = path.rsplit(":", 1)[-1].rsplit(".", 1)[-1]
        if name == "userName":
            given = random.choice(GIVEN).lower().replace("'", "")
            family = random.choice(FAMILY).lower().replace("'", "")
            return f"{given}.{family}.{digits(9)}@{self.domain}"
        if name == "externalId":
            return f"{self.organisation}{digits(9)}"
        if name == "givenName":
            return random.choice(GIVEN)
        if name == "familyName":
            return random.choice(FAMILY)
        if name in self.lists:
            return random.choice(self.lists[name])
        if name == "organisation":
            self.organisation = random.choice(self.organisations)
            return self.organisation
        if name == "organisationUnit":
            return self.organisation
        if name in ("displayName", "title", "notes"):
            return f"{random.choice(WORDS)} {digits(4)}"
        if "phone" in model.lower():
            # The value comes before the type in a phoneNumbers entry: the kind is chosen
            # with the value, since a pager holds bleep digits (free text, and a leading `+`
            # is refused there as a formula) and the others a number.
            if name == "value":
                self.phone_type = random.choice(PHONE_TYPES)
                return digits(5) if self.phone_type == "pager" else mobile()
            if name == "type":
                return self.phone_type
        return None

    def __call__(self, context, path, mutability=None, required=None):
        value = self.original(context, path, mutability=mutability, required=required)
        if value is None:
            # Filtered out by mutability or required: not to be filled.
            return None
        binding = path.resolve()
        model = binding.target_model.__name__ if binding and binding.target_model else ""
        mine = self.value(str(path), model)
        if mine is None:
            return value
        if binding and binding.target_is_multivalued:
            return [mine]
        return mine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the SCIM base URL (…/v2)")
    parser.add_argument(
        "--token",
        default=os.environ.get("SCIM_TOKEN"),
        help="bearer token (default: $SCIM_TOKEN)",
    )
    parser.add_argument(
        "--organisations",
        default="RXX,RYY",
        help="ODS codes the Users are put in, comma-separated (default RXX,RYY)",
    )
    parser.add_argument(
        "--codes",
        type=Path,
        default=ROOT / "samples" / "codes",
        help="folder of titles.txt, clinical-roles.txt, clinical-specialities.txt, "
        "work-areas.txt (default: the repository's samples/codes)",
    )
    parser.add_argument(
        "--domain", default="nhs.net", help="mail domain of userName (default nhs.net)"
    )
    parser.add_argument("--seed", type=int, help="seed the random values (a rerun repeats)")
    args = parser.parse_args()
    if args.seed is not None:
        random.seed(args.seed)
    organisations = [o.strip().upper() for o in args.organisations.split(",") if o.strip()]
    if not organisations:
        parser.error("--organisations names no code")
    generate = Generator(organisations, args.codes, args.domain)
    # Every binding of the generator: filling's own (used by fill_with_random_values, and
    # so by resource_put and the resource manager) and the two checkers that imported it.
    for module in (filling, patch_add, patch_replace):
        module.generate_random_value = generate
    if args.token:
        # The environment, not the command line: other users can read argv.
        os.environ["SCIM_CLI_HEADERS"] = f"Authorization: Bearer {args.token}"
    try:
        cli.main(args=["--url", args.url, "test"], prog_name="scim2")
    except SystemExit as done:
        return int(done.code or 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
