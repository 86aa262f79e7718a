"""The demo division: a fictional psychiatry division with three years of weekly data.

``demo_load`` builds the organisation (5 departments, 24 units), the forums with their members,
one log-in per role, 15 measures with their recording handbooks, and loads generated data
through the real import path (CSV file → import batch → validation → bulk writer), so the demo
exercises what a real extract does and its batches show in the batch list. Then the
improvement work of :mod:`demo.workflow` (initiatives along every path, meetings, votes …).

The data is drawn with ``numpy.random.default_rng`` from fixed seeds, one stream per unit and
measure, so a given end date always gives the same rows. Everything is fictional: subject keys
are pseudonyms such as ``P012345`` (never anything shaped like a personal identity number) and
are stored, like every import's, only as a keyed hash.

Used by ``manage.py load_demo``, which ``make run`` calls on every start: when the demo
division exists it only reports the log-ins.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractUser
from django.core.files import File
from django.db import transaction
from django.db.models import Max, ProtectedError, Q
from django.utils import timezone

from forums.enums import ForumKind, MembershipRole
from forums.models import Forum, Membership
from initiatives.models import (
    Adoption,
    Attachment,
    Initiative,
    PDSACycle,
    SupportRequest,
    VotingRound,
)
from measures.aggregation import series_recompute
from measures.enums import (
    Direction,
    Face,
    Frequency,
    ImportSource,
    ImportStatus,
    MeasureKind,
    Scope,
)
from measures.models import ImportBatch, Measure, Observation
from measures.services import import_batch_create, import_batch_process
from units.enums import UnitKind
from units.models import Affiliation, Department, Division, Unit

from .workflow import demo_workflow_load

#: Seed of every random stream; each unit × measure draws from ``default_rng([SEED, u, m])``.
SEED = 20_240_101
DIVISION_CODE = "psy"
DIVISION_NAME = "Psykiatri"
#: The one password of every demo account (printed with the log-ins).
PASSWORD = "demo-psykiatri"  # noqa: S105 - printed for everyone: demo accounts only
#: Three years of weeks.
WEEKS = 156
#: Import files the demo writes are named so; a reset deletes the batches named so.
FILE_PREFIX = "lhs-demo-"
#: Who uploads the demo data (must be able to import for every unit).
UPLOADER = "admin"


class DemoError(Exception):
    """The demo cannot be loaded (a name is taken, an import was rejected, …)."""


# --- the organisation -----------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUnit:
    code: str
    name: str
    kind: str
    #: Relative patient volume (1.0 is a typical unit of its kind).
    volume: float = 1.0
    #: Beds, for in-patient units (the exposure of the coercion rate).
    beds: int = 0


@dataclass(frozen=True)
class DemoDepartment:
    code: str
    name: str
    units: tuple[DemoUnit, ...]


IN, OUT = UnitKind.IN_PATIENT, UnitKind.OUT_PATIENT

DEPARTMENTS: tuple[DemoDepartment, ...] = (
    DemoDepartment(
        "aff",
        "Affektiva sjukdomar",
        (
            DemoUnit("AFF-AVD1", "Affektiv slutenvård, avdelning 1", IN, 1.0, beds=16),
            DemoUnit("AFF-AVD2", "Affektiv slutenvård, avdelning 2 (ECT)", IN, 0.8, beds=12),
            DemoUnit("AFF-OPV1", "Förstämningsmottagningen Söder", OUT, 1.3),
            DemoUnit("AFF-OPV2", "Förstämningsmottagningen Norr", OUT, 1.1),
            DemoUnit("AFF-OPV3", "Ångestmottagningen", OUT, 1.2),
            DemoUnit("AFF-OPV4", "Bipolärmottagningen", OUT, 0.8),
        ),
    ),
    DemoDepartment(
        "psykos",
        "Psykos",
        (
            DemoUnit("PSY-AVD1", "Psykosavdelning 1 – akut", IN, 1.1, beds=18),
            DemoUnit("PSY-AVD2", "Psykosavdelning 2 – rehabilitering", IN, 0.7, beds=14),
            DemoUnit("PSY-OPV1", "Psykosmottagningen Väster", OUT, 1.0),
            DemoUnit("PSY-OPV2", "Psykosmottagningen Öster", OUT, 1.0),
            DemoUnit("PSY-OPV3", "Mottagningen för första episodens psykos", OUT, 0.6),
        ),
    ),
    DemoDepartment(
        "beroende",
        "Beroende",
        (
            DemoUnit("BER-AVD1", "Beroendeavdelningen – abstinensvård", IN, 1.2, beds=14),
            DemoUnit("BER-OPV1", "Beroendemottagningen City", OUT, 1.3),
            DemoUnit("BER-OPV2", "Beroendemottagningen Söder", OUT, 1.0),
            DemoUnit("BER-OPV3", "Läkemedelsassisterad behandling (LARO)", OUT, 0.8),
            DemoUnit("BER-OPV4", "Mottagningen för spelberoende", OUT, 0.5),
        ),
    ),
    DemoDepartment(
        "neuropsykiatri",
        "Neuropsykiatri",
        (
            DemoUnit("NPK-AVD1", "Neuropsykiatrisk slutenvård", IN, 0.6, beds=8),
            DemoUnit("NPK-OPV1", "Utredningsenheten för vuxen-adhd", OUT, 1.4),
            DemoUnit("NPK-OPV2", "Autismmottagningen", OUT, 0.9),
            DemoUnit("NPK-OPV3", "Neuropsykiatriska mottagningen Norr", OUT, 1.0),
        ),
    ),
    DemoDepartment(
        "atstorningar",
        "Ätstörningar",
        (
            DemoUnit("ATS-AVD1", "Ätstörningsavdelningen", IN, 0.6, beds=10),
            DemoUnit("ATS-DAG1", "Dagvården för ätstörningar", OUT, 0.6),
            DemoUnit("ATS-OPV1", "Ätstörningsmottagningen för vuxna", OUT, 0.9),
            DemoUnit("ATS-OPV2", "Mottagningen för unga vuxna med ätstörning", OUT, 0.7),
        ),
    ),
)

#: Units whose data-analysis forum they share (every other unit has a forum of its own).
SHARED_UNIT_FORUMS: dict[str, tuple[str, ...]] = {
    "Analysforum Förstämningsmottagningarna": ("AFF-OPV1", "AFF-OPV2"),
    "Analysforum Neuropsykiatriska mottagningarna": ("NPK-OPV2", "NPK-OPV3"),
    "Analysforum Ätstörningsmottagningarna": ("ATS-OPV1", "ATS-OPV2"),
}
SUPPORT_UNIT_NAME = "Stödenheten för data och förbättring"
BOARD_NAME = "Divisionsledningen Psykiatri"


def _unit_forum_name(unit: DemoUnit) -> str:
    return f"Analysforum {unit.name}"


def _department_group_name(department: DemoDepartment) -> str:
    return f"Samordningsgrupp {department.name}"


# --- people ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoUser:
    username: str
    first_name: str
    last_name: str
    #: What the person does in the demo, for the log-in table.
    role: str
    #: (unit code, title, first-line manager)
    affiliations: tuple[tuple[str, str, bool], ...] = ()
    #: (forum name, role)
    memberships: tuple[tuple[str, str], ...] = ()
    superuser: bool = False
    #: One account per role of DESIGN.md §2; the others are extra staff.
    is_role_account: bool = False


CHAIR, SECRETARY, MEMBER = MembershipRole.CHAIR, MembershipRole.SECRETARY, MembershipRole.MEMBER
_AVD1 = _unit_forum_name(DEPARTMENTS[0].units[0])
_PSY_AVD1 = _unit_forum_name(DEPARTMENTS[1].units[0])
_BER_OPV1 = _unit_forum_name(DEPARTMENTS[2].units[1])
_NPK_OPV1 = _unit_forum_name(DEPARTMENTS[3].units[1])
_GROUP = {d.code: _department_group_name(d) for d in DEPARTMENTS}

USERS: tuple[DemoUser, ...] = (
    # One account per role (DESIGN.md §2).
    DemoUser(
        "clinician",
        "Emma",
        "Lindqvist",
        "Clinician",
        affiliations=(("AFF-AVD1", "Sjuksköterska", False),),
        memberships=((_AVD1, MEMBER),),
        is_role_account=True,
    ),
    DemoUser(
        "chair",
        "Jonas",
        "Åberg",
        "Unit forum chair",
        affiliations=(("AFF-AVD1", "Enhetschef", True),),
        memberships=((_AVD1, CHAIR), (_GROUP["aff"], MEMBER)),
        is_role_account=True,
    ),
    DemoUser(
        "deptchair",
        "Karin",
        "Öberg",
        "Department group chair",
        affiliations=(("AFF-OPV1", "Biträdande verksamhetschef", False),),
        memberships=((_GROUP["aff"], CHAIR),),
        is_role_account=True,
    ),
    DemoUser(
        "support",
        "Mikael",
        "Sjöström",
        "Support-unit staff",
        memberships=((SUPPORT_UNIT_NAME, MEMBER),),
        is_role_account=True,
    ),
    DemoUser(
        "board",
        "Birgitta",
        "Hägglund",
        "Division board member",
        memberships=((BOARD_NAME, MEMBER),),
        is_role_account=True,
    ),
    DemoUser("admin", "Ada", "Admin", "Administrator", superuser=True, is_role_account=True),
    # Extra staff: forum secretaries and members, other units' chairs, heads of departments.
    DemoUser(
        "lena.nystrom",
        "Lena",
        "Nyström",
        "Extra staff",
        affiliations=(("AFF-AVD1", "Skötare", False),),
        memberships=((_AVD1, SECRETARY),),
    ),
    DemoUser(
        "ahmed.karimi",
        "Ahmed",
        "Karimi",
        "Extra staff",
        affiliations=(("AFF-AVD1", "Överläkare", False), ("AFF-AVD2", "Överläkare", False)),
        memberships=((_AVD1, MEMBER),),
    ),
    DemoUser(
        "sofia.backstrom",
        "Sofia",
        "Bäckström",
        "Extra staff",
        affiliations=(("PSY-AVD1", "Enhetschef", True),),
        memberships=((_PSY_AVD1, CHAIR), (_GROUP["psykos"], MEMBER)),
    ),
    DemoUser(
        "erik.holm",
        "Erik",
        "Holm",
        "Extra staff",
        affiliations=(("PSY-AVD1", "Sjuksköterska", False),),
        memberships=((_PSY_AVD1, SECRETARY),),
    ),
    DemoUser(
        "maria.sandberg",
        "Maria",
        "Sandberg",
        "Extra staff",
        affiliations=(("BER-OPV1", "Psykolog", False),),
        memberships=((_BER_OPV1, CHAIR), (_GROUP["beroende"], MEMBER)),
    ),
    DemoUser(
        "johan.akesson",
        "Johan",
        "Åkesson",
        "Extra staff",
        affiliations=(("NPK-OPV1", "Enhetschef", True),),
        memberships=((_NPK_OPV1, CHAIR), (_GROUP["neuropsykiatri"], MEMBER)),
    ),
    DemoUser(
        "eva.strom",
        "Eva",
        "Ström",
        "Extra staff",
        memberships=((SUPPORT_UNIT_NAME, CHAIR), (BOARD_NAME, SECRETARY)),
    ),
    DemoUser(
        "anders.lof",
        "Anders",
        "Löf",
        "Extra staff",
        memberships=((BOARD_NAME, CHAIR),),
    ),
    DemoUser(
        "ingrid.dahl",
        "Ingrid",
        "Dahl",
        "Extra staff",
        memberships=((BOARD_NAME, MEMBER), (_GROUP["aff"], MEMBER)),
    ),
    DemoUser(
        "per.ekstrom",
        "Per",
        "Ekström",
        "Extra staff",
        memberships=((BOARD_NAME, MEMBER), (_GROUP["psykos"], CHAIR)),
    ),
    DemoUser(
        "fatima.yilmaz",
        "Fatima",
        "Yilmaz",
        "Extra staff",
        memberships=((BOARD_NAME, MEMBER), (_GROUP["beroende"], CHAIR)),
    ),
    DemoUser(
        "goran.wikstrom",
        "Göran",
        "Wikström",
        "Extra staff",
        memberships=((BOARD_NAME, MEMBER), (_GROUP["neuropsykiatri"], CHAIR)),
    ),
    DemoUser(
        "annika.sjodin",
        "Annika",
        "Sjödin",
        "Extra staff",
        memberships=((BOARD_NAME, MEMBER), (_GROUP["atstorningar"], CHAIR)),
    ),
)


# --- measures -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """How the demo draws one measure's data.

    ``model``: ``bernoulli`` (0/1 rows with probability ``level``), ``normal`` (scores around
    ``level`` with ``spread`` as SD), ``gamma`` (skewed waiting times with mean ``level`` and
    shape ``spread``), ``event`` (one row of 1 per event, ``rows`` events a week), or
    pre-aggregated ``rate`` rows (``level`` events per the measure's ``rate_per`` of exposure;
    ``rows`` is the exposure per week of an out-patient unit, in-patient units use bed days).
    Levels and rows are given for in-patient and out-patient units.
    """

    model: str
    #: Which units report it: "inpatient", "outpatient", "all", or a department or unit code.
    units: str
    rows_in: float = 0.0
    rows_out: float = 0.0
    level_in: float = 0.0
    level_out: float = 0.0
    spread: float = 0.0
    #: Standard deviation of the level between units.
    unit_spread: float = 0.0
    decimals: int = 0
    #: Change of the level in the summer holiday (ISO weeks 27–32: stand-ins, fewer staff).
    summer: float = 0.0
    #: The newest weeks the extract does not have yet (e.g. readmission needs 30 days).
    lag_weeks: int = 0


@dataclass(frozen=True)
class DemoMeasure:
    code: str
    name: str
    kind: str
    direction: str
    frequency: str
    scope: str
    face: str
    draw: Draw
    description: str
    computation: str
    recording_handbook: str
    display_unit: str = ""
    #: Department code (scope department) or unit code (scope unit).
    owner: str = ""
    #: Username of the contact person.
    contact: str = "support"
    instrument: str = ""
    data_source: str = ""
    target: str | None = None
    rate_per: int | None = None
    minimum_n: int = 5
    value_min: float | None = None
    value_max: float | None = None


def _text(value: str) -> str:
    """Paragraphs written as indented triple-quoted strings, dedented and trimmed."""
    paragraphs = [" ".join(p.split()) for p in value.strip().split("\n\n")]
    return "\n\n".join(p for p in paragraphs if p)


MEASURES: tuple[DemoMeasure, ...] = (
    DemoMeasure(
        code="honos-total",
        name="HoNOS total score",
        kind=MeasureKind.MEAN,
        direction=Direction.DOWN,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.ACCOUNTABILITY,
        display_unit="points",
        instrument="HoNOS (Health of the Nation Outcome Scales)",
        data_source="Health record: HoNOS form (Bedömningar › HoNOS)",
        value_min=0,
        value_max=48,
        draw=Draw(
            "normal",
            "all",
            rows_in=8,
            rows_out=18,
            level_in=17,
            level_out=11,
            spread=6,
            unit_spread=2,
        ),
        description=_text(
            """Mean HoNOS total score of the ratings made in the period: how severe patients'
            problems are across behaviour, impairment, symptoms and social functioning. Lower
            is better; compare units with care, since case mix differs."""
        ),
        computation=_text(
            """Mean of all HoNOS totals (items 1–12, each 0–4; 0–48) rated in the period.
            Ratings with more than two items missing or rated 9 ("not known") are excluded by
            the extract, because their totals are not comparable."""
        ),
        recording_handbook=_text(
            """Rate HoNOS in the health record under Bedömningar › HoNOS: within 48 hours of
            admission to a ward, at discharge, at the first visit to an out-patient unit, and
            at least once a year while care goes on. The form is signed by the rater and dated
            with the day of the assessment, not the day it was entered.

            Rate the worst state during the previous two weeks (in-patient admission: the
            previous two weeks before admission). Use 9 only when you truly do not know;
            a rating with more than two items at 9 is left out of the measure.

            Common mistakes: copying the previous rating forward, entering a discharge rating
            under the admission's date, and filling in the form on paper without entering it
            (paper forms never reach the extract)."""
        ),
    ),
    DemoMeasure(
        code="honos-change",
        name="HoNOS change (first to last rating)",
        kind=MeasureKind.MEAN,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.ACCOUNTABILITY,
        display_unit="points",
        instrument="HoNOS (Health of the Nation Outcome Scales)",
        data_source="Health record: HoNOS form, paired ratings per care episode",
        value_min=-48,
        value_max=48,
        draw=Draw(
            "normal",
            "all",
            rows_in=5,
            rows_out=8,
            level_in=7,
            level_out=3,
            spread=5,
            unit_spread=1.5,
        ),
        description=_text(
            """How much patients' HoNOS total improved over a completed care episode (an
            in-patient stay, or a year of out-patient care). Positive values mean improvement:
            higher is better."""
        ),
        computation=_text(
            """For each episode that ended in the period with both a first and a last valid
            HoNOS rating: first total minus last total. The measure is the mean of these
            differences; the row is dated on the day of the last rating. Episodes with only
            one rating are left out (see the handbook)."""
        ),
        recording_handbook=_text(
            """This measure needs two HoNOS ratings of the same episode: one at the start
            (admission or first visit) and one at the end (discharge, or the yearly
            follow-up). Register both under Bedömningar › HoNOS and tick "Utskrivning" or
            "Uppföljning" on the last one so the extract can pair them.

            Discharges at weekends and on the day of an unplanned discharge are the usual
            gaps: the ward's discharge checklist has a line for the HoNOS rating, and the
            nurse responsible signs it off.

            Common mistakes: a last rating entered as a new "Inskrivning" (it then starts a new
            episode), and ratings made by different professions at start and end without a
            joint calibration; the support unit runs a short HoNOS calibration each term."""
        ),
    ),
    DemoMeasure(
        code="psp",
        name="Personal and social performance (PSP)",
        kind=MeasureKind.MEAN,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.ACCOUNTABILITY,
        display_unit="points",
        instrument="PSP (Personal and Social Performance scale)",
        data_source="Health record: PSP form; also reported to the quality registers",
        value_min=1,
        value_max=100,
        draw=Draw(
            "normal",
            "all",
            rows_in=6,
            rows_out=12,
            level_in=45,
            level_out=60,
            spread=12,
            unit_spread=4,
        ),
        description=_text(
            """Mean PSP score of the ratings made in the period: patients' functioning in
            socially useful activities, personal and social relationships, self-care, and
            disturbing and aggressive behaviour. 1–100; higher is better."""
        ),
        computation=_text(
            """Mean of all PSP scores (1–100) rated in the period. A patient rated twice in
            one period counts twice."""
        ),
        recording_handbook=_text(
            """Rate PSP under Bedömningar › PSP at the first visit or on admission, at
            discharge, and at least once a year. Rate the patient's functioning over the past
            month; choose the ten-point interval from the four domains first, then the score
            within it.

            The score is one whole number from 1 to 100. Enter it in the "Totalpoäng" field,
            not only in the free-text note: the extract reads the field.

            Common mistakes: entering the interval's lower bound (e.g. 51) for every patient
            in that interval, and rating current symptoms rather than functioning."""
        ),
    ),
    DemoMeasure(
        code="eq5d-index",
        name="Health-related quality of life (EQ-5D index)",
        kind=MeasureKind.MEAN,
        direction=Direction.UP,
        frequency=Frequency.MONTH,
        scope=Scope.DIVISION,
        face=Face.ACCOUNTABILITY,
        display_unit="index",
        instrument="EQ-5D-3L, UK TTO value set",
        data_source="Patient questionnaire in the waiting-room tablet (1177 formulär)",
        minimum_n=10,
        value_min=-0.594,
        value_max=1.0,
        draw=Draw(
            "normal",
            "outpatient",
            rows_out=12,
            level_out=0.62,
            spread=0.22,
            unit_spread=0.04,
            decimals=3,
        ),
        description=_text(
            """Mean EQ-5D index of the questionnaires patients answered in the period: their
            own rating of mobility, self-care, usual activities, pain and anxiety/depression,
            weighted to one index (1 = full health, below 0 = worse than death). Higher is
            better. Out-patient units only."""
        ),
        computation=_text(
            """Mean of the index values of all complete questionnaires answered in the month.
            The index is computed from the five answers with the UK TTO value set (range
            −0.594 to 1); incomplete questionnaires are left out."""
        ),
        recording_handbook=_text(
            """Patients answer EQ-5D themselves on the waiting-room tablet or through 1177
            before the visit; staff do not fill it in for them. Offer it at the first visit
            and at every yearly follow-up.

            If the patient answers on paper, enter all five answers under Formulär ›
            EQ-5D on the same day, with the date the patient answered. The index is computed
            by the system; never type it in yourself.

            Common mistakes: helping the patient to answer (the answers must be the patient's
            own), and registering a paper form weeks later under the date of entry."""
        ),
    ),
    DemoMeasure(
        code="care-plan",
        name="Share of patients with a care plan",
        kind=MeasureKind.PROPORTION,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.RESEARCH,
        display_unit="%",
        target="90",
        data_source="Health record: Vårdplan template (status Upprättad)",
        draw=Draw(
            "bernoulli",
            "all",
            rows_in=8,
            rows_out=16,
            level_in=0.82,
            level_out=0.76,
            unit_spread=0.06,
            summer=-0.07,
        ),
        description=_text(
            """Share of patients with a documented care plan, made together with the patient,
            of those whose plan was due in the period. Higher is better; target 90 %."""
        ),
        computation=_text(
            """Denominator: patients discharged from a ward, or reaching 30 days in out-patient
            care, in the period. Numerator: those of them with a care plan in status
            "Upprättad" signed before that day. One row per patient and occasion (1 = had a
            plan, 0 = had none)."""
        ),
        recording_handbook=_text(
            """Write the care plan in the health record with the template Vårdplan (not in a
            free-text note), together with the patient, and set its status to "Upprättad"
            when it is agreed. Record that the patient took part in the field "Patientens
            delaktighet". Wards: within 7 days of admission. Out-patient units: within 30 days
            of the first visit.

            Only the template's status counts: a care plan written in a daily note, or left as
            "Utkast", is not found by the extract. Revise the plan (new version of the same
            template) when goals change; do not start a new one.

            Common mistakes: leaving the plan as a draft after the meeting, and writing the
            plan in the discharge summary instead."""
        ),
    ),
    DemoMeasure(
        code="register-reported",
        name="Share reported to the national quality register",
        kind=MeasureKind.PROPORTION,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.RESEARCH,
        display_unit="%",
        target="80",
        data_source="Quality-register reporting log (PsykosR, BipoläR, RiksÄt, Kvalitetsregister ECT, SBR)",
        draw=Draw(
            "bernoulli",
            "all",
            rows_in=6,
            rows_out=13,
            level_in=0.74,
            level_out=0.70,
            unit_spread=0.07,
            summer=-0.05,
        ),
        description=_text(
            """Share of patients eligible for a national quality register who were reported to
            it. The regional authority follows this measure. Higher is better; target 80 %."""
        ),
        computation=_text(
            """Denominator: patients whose register occasion (new patient, yearly follow-up,
            discharge) fell in the period. Numerator: those of them with a report accepted by
            the register within 30 days of the occasion."""
        ),
        recording_handbook=_text(
            """Which register a patient belongs to follows the main diagnosis: psychosis
            (PsykosR), bipolar disorder (BipoläR), eating disorders (RiksÄt), ECT (Kvalitets-
            register ECT), substance use (SBR). The register form opens from the health record
            under Kvalitetsregister; most fields are filled in from the record.

            Report at the occasion itself — the first visit, the yearly follow-up or the
            discharge — and check that the status reads "Inskickad". A form saved but not
            sent is not a report.

            Common mistakes: waiting until the yearly register reminder (the report then
            falls outside 30 days), and reporting under a colleague's log-in."""
        ),
    ),
    DemoMeasure(
        code="readmission-30d",
        name="Readmissions within 30 days",
        kind=MeasureKind.PROPORTION,
        direction=Direction.DOWN,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.ACCOUNTABILITY,
        display_unit="%",
        target="10",
        data_source="Patient administrative system: admissions and discharges",
        draw=Draw(
            "bernoulli", "inpatient", rows_in=7, level_in=0.13, unit_spread=0.03, lag_weeks=5
        ),
        description=_text(
            """Share of discharges from psychiatric wards followed by a new unplanned
            admission to any of the division's wards within 30 days. Lower is better; target
            10 %. The newest five weeks are not yet known and are missing."""
        ),
        computation=_text(
            """Denominator: discharges in the period (transfers between wards are not
            discharges). Numerator: those followed by an unplanned admission within 30 days.
            One row per discharge, dated on the discharge day (1 = readmitted)."""
        ),
        recording_handbook=_text(
            """Nothing to enter by hand: the measure is computed from the admission and
            discharge registrations in the patient administrative system. It is only right
            when those are.

            Register a move between wards as a transfer ("Överflyttning"), not as a discharge
            and a new admission; otherwise it counts as a readmission. Mark a planned
            re-admission (e.g. an ECT series) as "Planerad" at admission.

            Common mistakes: discharging a patient on leave instead of registering leave
            ("Permission"), and late discharge registrations after the weekend."""
        ),
    ),
    DemoMeasure(
        code="coercion-rate",
        name="Coercive measures per 1,000 bed days",
        kind=MeasureKind.RATE,
        direction=Direction.DOWN,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.ACCOUNTABILITY,
        display_unit="per 1,000 bed days",
        rate_per=1000,
        minimum_n=1,
        data_source="Coercion log (LPT/LRV) and bed days from the patient administrative system",
        draw=Draw("rate", "inpatient", level_in=22, unit_spread=7),
        description=_text(
            """Coercive measures under the Compulsory Psychiatric Care Act (LPT) and the
            Forensic Psychiatric Care Act (LRV) — mechanical restraint, seclusion, forced
            medication, restraint by holding — per 1,000 occupied bed days. Lower is better.
            In-patient units only."""
        ),
        computation=_text(
            """Numerator: decisions on coercive measures carried out in the week (each
            decision counts once). Denominator: occupied bed days in the week, including
            leave days. Rows arrive pre-aggregated per ward and week."""
        ),
        recording_handbook=_text(
            """Every coercive measure is a decision by the consultant in charge and is
            recorded in the coercion log (Tvångsåtgärder) in the health record at once, with
            the kind of measure (§ 17 forced medication, § 19 restraint, § 20 seclusion, § 19a
            holding), start and end time. The extract counts decisions, not entries.

            Bed days come from the patient administrative system; make sure leave and
            transfers are registered on the day they happen.

            Common mistakes: one decision entered twice (once by the nurse, once by the
            doctor), forgetting the end time (the measure then stays open), and holding the
            patient for a short while without recording it at all."""
        ),
    ),
    DemoMeasure(
        code="days-to-first-visit",
        name="Days to first visit",
        kind=MeasureKind.MEAN,
        direction=Direction.DOWN,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.RESEARCH,
        display_unit="days",
        target="14",
        value_min=0,
        value_max=365,
        data_source="Referral system and booking system",
        draw=Draw("gamma", "outpatient", rows_out=11, level_out=20, spread=2.2, unit_spread=4),
        description=_text(
            """Mean number of days from an accepted referral to the first visit with a
            licensed professional, for new patients seen in the period. Lower is better;
            target 14 days. Out-patient units only."""
        ),
        computation=_text(
            """For each first visit in the period: days from the date the referral was
            accepted to the date of the visit. Visits the patient postponed are counted from
            the date the patient asked for the new time."""
        ),
        recording_handbook=_text(
            """Register the referral in the referral system on the day it arrives and mark it
            "Accepterad" on the day it is assessed; the clock starts then. Book the first
            visit as visit type "Nybesök" — the extract looks for it.

            When a patient asks to postpone, register it as "Patientvald väntan" with the
            date: the waiting time is then counted from that date, as the care guarantee
            rules say. When the unit cancels, do not use that code.

            Common mistakes: booking the first visit as "Återbesök", and accepting referrals
            in batches at the end of the week (this hides the real waiting time)."""
        ),
    ),
    DemoMeasure(
        code="incidents",
        name="Reported incidents",
        kind=MeasureKind.COUNT,
        direction=Direction.DOWN,
        frequency=Frequency.WEEK,
        scope=Scope.DIVISION,
        face=Face.IMPROVEMENT,
        display_unit="incidents",
        minimum_n=1,
        value_min=0,
        data_source="Incident reporting system (avvikelsehantering)",
        draw=Draw("event", "all", rows_in=3, rows_out=1),
        description=_text(
            """Number of incidents (avvikelser) reported for the unit in the period: events
            that caused or could have caused harm to a patient, such as falls, medication
            errors, violence and self-harm on the ward. Lower is better — but a unit that
            reports more is not necessarily less safe."""
        ),
        computation=_text(
            """Count of incident reports, dated on the day of the event, by the unit where it
            happened. One row per report."""
        ),
        recording_handbook=_text(
            """Report every incident in the incident reporting system the same day, under
            the unit where it happened (not the reporter's home unit). Choose the event type
            from the list; use "Övrigt" only when nothing fits.

            Report near misses too: they are how a unit learns before anyone is hurt. The
            first-line manager classifies the report within a week.

            Common mistakes: one event reported by several staff (the manager merges them),
            and the report dated on the day it was written instead of the day of the event."""
        ),
    ),
    DemoMeasure(
        code="no-show-rate",
        name="Missed appointments per 100 booked visits",
        kind=MeasureKind.RATE,
        direction=Direction.DOWN,
        frequency=Frequency.MONTH,
        scope=Scope.DIVISION,
        face=Face.IMPROVEMENT,
        display_unit="per 100 visits",
        rate_per=100,
        target="5",
        minimum_n=1,
        data_source="Booking system: visit outcomes",
        draw=Draw("rate", "outpatient", rows_out=95, level_out=7, unit_spread=2, summer=2),
        description=_text(
            """Booked visits the patient did not attend and did not cancel (uteblivna
            besök), per 100 booked visits. Lower is better; target 5 per 100. Out-patient
            units only."""
        ),
        computation=_text(
            """Numerator: visits with the outcome "Uteblivit" in the month. Denominator: all
            booked visits in the month, attended or not, excluding visits the unit
            cancelled. Rows arrive pre-aggregated per unit and month."""
        ),
        recording_handbook=_text(
            """Close every booked visit in the booking system on the day: "Genomfört",
            "Uteblivit" or "Avbokat av patient". A visit left open is not counted at all.

            Register a visit the patient cancelled less than 24 hours before as "Avbokat av
            patient, sent" — it is not a missed visit. Video visits the patient did not join
            count as missed.

            Common mistakes: leaving missed visits open, and closing them in bulk weeks
            later."""
        ),
    ),
    DemoMeasure(
        code="suicide-risk-assessed",
        name="Structured suicide risk assessment documented",
        kind=MeasureKind.PROPORTION,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.DEPARTMENT,
        owner="aff",
        contact="deptchair",
        face=Face.IMPROVEMENT,
        display_unit="%",
        target="95",
        data_source="Health record: Suicidriskbedömning template",
        draw=Draw(
            "bernoulli",
            "aff",
            rows_in=8,
            rows_out=15,
            level_in=0.88,
            level_out=0.83,
            unit_spread=0.04,
            summer=-0.05,
        ),
        description=_text(
            """Share of new patients and admissions with a structured suicide risk assessment
            documented within 24 hours. Department of affective disorders; higher is better;
            target 95 %."""
        ),
        computation=_text(
            """Denominator: admissions and first visits in the period. Numerator: those with
            the template Suicidriskbedömning signed within 24 hours."""
        ),
        recording_handbook=_text(
            """Use the template Suicidriskbedömning in the health record — the free-text
            headings of a daily note are not found. Fill in at least the risk factors, the
            protective factors and the clinical judgement, and sign it.

            Wards: at admission, before the first leave, and before discharge. Out-patient
            units: at the first visit and whenever the clinical picture changes.

            Common mistakes: writing the assessment in the admission note only, and leaving
            the template unsigned at the end of a shift."""
        ),
    ),
    DemoMeasure(
        code="metabolic-screening",
        name="Metabolic screening within 12 months",
        kind=MeasureKind.PROPORTION,
        direction=Direction.UP,
        frequency=Frequency.MONTH,
        scope=Scope.DEPARTMENT,
        owner="psykos",
        contact="per.ekstrom",
        face=Face.RESEARCH,
        display_unit="%",
        target="80",
        data_source="Health record: Metabol kontroll template and laboratory results",
        draw=Draw(
            "bernoulli",
            "psykos",
            rows_in=5,
            rows_out=12,
            level_in=0.62,
            level_out=0.55,
            unit_spread=0.08,
        ),
        description=_text(
            """Share of patients on antipsychotic medication with a complete metabolic
            screening (weight, waist, blood pressure, glucose and lipids) in the past 12
            months. Department of psychosis; higher is better; target 80 %."""
        ),
        computation=_text(
            """Denominator: patients on antipsychotics with a visit or discharge in the
            period. Numerator: those with all five parts recorded within the previous 12
            months. One row per patient and occasion."""
        ),
        recording_handbook=_text(
            """Record weight, waist circumference and blood pressure in the template Metabol
            kontroll (measurements, not a note), and order fasting glucose (or HbA1c) and
            lipids with the order set "Metabol kontroll psykos". Results from primary care
            count if they are entered in the template with their date.

            Do it at the start of antipsychotic treatment, after three months and then every
            year.

            Common mistakes: measurements written in a note, waist left out, and laboratory
            tests ordered but never taken (check the order's status)."""
        ),
    ),
    DemoMeasure(
        code="avd1-involvement",
        name="Delaktighet: I was involved in planning my care",
        kind=MeasureKind.MEAN,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.UNIT,
        owner="AFF-AVD1",
        contact="chair",
        face=Face.IMPROVEMENT,
        display_unit="points (1–5)",
        target="4",
        instrument="Ward's own discharge question (1–5)",
        data_source="Discharge questionnaire on the ward tablet",
        value_min=1,
        value_max=5,
        draw=Draw("normal", "AFF-AVD1", rows_in=6, level_in=3.4, spread=0.9),
        description=_text(
            """A local measure of Affektiv slutenvård, avdelning 1: patients' answer at
            discharge to "I was involved in planning my care", from 1 (not at all) to 5
            (completely). Higher is better; the ward's own target is 4."""
        ),
        computation=_text(
            """Mean of all answers given at discharge in the period. Patients who decline to
            answer are not counted."""
        ),
        recording_handbook=_text(
            """At the discharge talk the nurse hands the patient the ward tablet with the
            single question; the patient answers alone. The answer is stored with the
            discharge date.

            Offer it to every patient who is discharged on a weekday; weekend discharges get
            it on the day before if the discharge is planned.

            Common mistakes: asking the question aloud and entering the answer for the
            patient, and skipping it when the discharge is hurried."""
        ),
    ),
    DemoMeasure(
        code="ber-family-meetings",
        name="Anhörigsamtal: family meetings held",
        kind=MeasureKind.COUNT,
        direction=Direction.UP,
        frequency=Frequency.WEEK,
        scope=Scope.UNIT,
        owner="BER-OPV1",
        contact="maria.sandberg",
        face=Face.IMPROVEMENT,
        display_unit="meetings",
        minimum_n=1,
        value_min=0,
        data_source="Booking system: visit type Anhörigsamtal",
        draw=Draw("event", "BER-OPV1", rows_out=3),
        description=_text(
            """A local measure of Beroendemottagningen City: meetings held with a patient's
            family or other close persons, with the patient's consent. The unit works to
            involve families more often. Higher is better."""
        ),
        computation=_text(
            """Count of attended visits of type Anhörigsamtal in the period, one row per
            meeting, whether the patient took part or not."""
        ),
        recording_handbook=_text(
            """Book the meeting as visit type "Anhörigsamtal" (not "Återbesök") and close it
            as "Genomfört" on the day. Record the patient's consent to involve the family in
            the field "Samtycke anhöriga" first.

            A meeting with several family members is one meeting. Telephone meetings count
            when booked as such.

            Common mistakes: booking the meeting under the family member's own record, and
            leaving the visit open."""
        ),
    ),
)


# --- interventions --------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoIntervention:
    """A dated change in one unit that moves one measure (a step, not a drift)."""

    unit: str
    measure: str
    #: The change takes effect on the Monday this many weeks before the last week's Monday.
    weeks_before_end: int
    #: The unit's level before and after (a probability, a mean, or events per rate_per).
    before: float
    after: float
    what: str

    def starts(self, end: date) -> date:
        return _week_start(end) - timedelta(weeks=self.weeks_before_end)


#: The demo's improvement stories. The data shows a step change on these dates in these units;
#: later features (PDSA-cycle annotations, re-basing of control limits, effect evaluation)
#: can use them. The dates move with the data's end date (the data always ends last week), so
#: they are given as weeks before the last week: ``intervention.starts(end)`` or
#: :func:`demo_interventions` give the dates.
INTERVENTIONS: tuple[DemoIntervention, ...] = (
    # The ward's care-plan share rises from ~60 % to ~87 %.
    DemoIntervention(
        unit="AFF-AVD1",
        measure="care-plan",
        weeks_before_end=40,
        before=0.60,
        after=0.87,
        what="Care plan drafted with the patient at the first ward round (PDSA cycle adopted)",
    ),
    # Coercive measures fall from ~55 to ~27 per 1,000 bed days.
    DemoIntervention(
        unit="PSY-AVD1",
        measure="coercion-rate",
        weeks_before_end=60,
        before=55.0,
        after=27.0,
        what="Safewards introduced on the ward: calm-down methods, mutual expectations, debriefing",
    ),
    # The mean wait for a first visit falls from ~30 to ~11 days.
    DemoIntervention(
        unit="BER-OPV1",
        measure="days-to-first-visit",
        weeks_before_end=80,
        before=30.0,
        after=11.0,
        what="Open telephone triage and two drop-in assessment slots a week",
    ),
    # Quality-register reporting rises from ~50 % to ~85 %.
    DemoIntervention(
        unit="NPK-OPV1",
        measure="register-reported",
        weeks_before_end=30,
        before=0.50,
        after=0.85,
        what="Register report made a line of the visit checklist; reported at the visit",
    ),
)


def demo_interventions(end: date | None = None) -> list[tuple[DemoIntervention, date]]:
    """The interventions with their dates; without ``end``, those of the loaded demo."""
    if end is None:
        end = demo_loaded_end()
    if end is None:
        return []
    return [(intervention, intervention.starts(end)) for intervention in INTERVENTIONS]


# --- dates ----------------------------------------------------------------------------------


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def demo_end_date(today: date | None = None) -> date:
    """The Sunday that ends the most recent complete week before ``today``."""
    today = today or timezone.localdate()
    return today - timedelta(days=today.isoweekday())


def demo_loaded_end() -> date | None:
    """The end date of the loaded demo data: the Sunday of its last weekly coercion period."""
    last = Observation.objects.filter(
        measure__code="coercion-rate", unit__department__division__code=DIVISION_CODE
    ).aggregate(last=Max("date"))["last"]
    return last + timedelta(days=6) if last else None


# --- data -----------------------------------------------------------------------------------


@dataclass
class DemoData:
    patient: pd.DataFrame
    aggregate: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.patient) + len(self.aggregate)


def _all_units() -> list[tuple[DemoDepartment, DemoUnit]]:
    return [(department, unit) for department in DEPARTMENTS for unit in department.units]


def _reports(draw: Draw, department: DemoDepartment, unit: DemoUnit) -> bool:
    if draw.units == "all":
        return True
    if draw.units == "inpatient":
        return unit.kind == IN
    if draw.units == "outpatient":
        return unit.kind == OUT
    return draw.units in (department.code, unit.code)


def _season(week_starts: pd.DatetimeIndex, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Volume factor per week (holidays, slow growth) and a mask of the summer weeks."""
    iso_week = week_starts.isocalendar().week.to_numpy()
    summer = (iso_week >= 27) & (iso_week <= 32)
    holidays = (iso_week >= 52) | (iso_week == 1)
    volume = np.ones(len(week_starts))
    volume[summer] = 0.95 if kind == IN else 0.55
    volume[holidays] = 0.9 if kind == IN else 0.6
    # About 4 % more patients a year.
    volume *= 1.0 + 0.04 * np.arange(len(week_starts)) / 52
    return volume, summer


def _levels(
    measure: DemoMeasure,
    unit: DemoUnit,
    week_starts: pd.DatetimeIndex,
    summer: np.ndarray,
    end: date,
    rng: np.random.Generator,
) -> np.ndarray:
    """The unit's level of the measure in every week (before any sampling noise)."""
    draw = measure.draw
    base = draw.level_in if unit.kind == IN else draw.level_out
    level = np.full(len(week_starts), base + rng.normal(0.0, draw.unit_spread or 1e-12))
    level[summer] += draw.summer
    for intervention in INTERVENTIONS:
        if intervention.unit == unit.code and intervention.measure == measure.code:
            after = week_starts >= pd.Timestamp(intervention.starts(end))
            level = np.where(after, intervention.after, intervention.before)
            level[summer] += draw.summer
    if draw.model == "bernoulli":
        level = np.clip(level, 0.02, 0.98)
    return level


def _patient_rows(
    measure: DemoMeasure,
    unit: DemoUnit,
    unit_index: int,
    week_starts: pd.DatetimeIndex,
    volume: np.ndarray,
    level: np.ndarray,
    scale: float,
    rng: np.random.Generator,
) -> pd.DataFrame | None:
    draw = measure.draw
    per_week = (draw.rows_in if unit.kind == IN else draw.rows_out) * unit.volume * scale
    counts = rng.poisson(per_week * volume)
    if draw.lag_weeks:
        counts[-draw.lag_weeks :] = 0
    total = int(counts.sum())
    if not total:
        return None
    week = np.repeat(np.arange(len(week_starts)), counts)
    # Wards work all week; out-patient units on weekdays.
    day = rng.integers(0, 7 if unit.kind == IN else 5, size=total)
    dates = week_starts.to_numpy().astype("datetime64[D]")[week] + day.astype("timedelta64[D]")
    mean = level[week]
    if draw.model == "bernoulli":
        values = (rng.random(total) < mean).astype(float)
    elif draw.model == "normal":
        values = rng.normal(mean, draw.spread)
    elif draw.model == "gamma":
        values = rng.gamma(draw.spread, mean / draw.spread)
    else:  # event
        values = np.ones(total)
    low = -np.inf if measure.value_min is None else measure.value_min
    high = np.inf if measure.value_max is None else measure.value_max
    values = np.clip(np.round(values, draw.decimals), low, high)
    text = (
        values.astype(int).astype(str)
        if draw.decimals == 0
        else np.char.mod(f"%.{draw.decimals}f", values)
    )
    if draw.model == "event":
        subjects = np.full(total, "", dtype=object)  # incidents and meetings: no patient key
    else:
        # A pool of pseudonymous patients per unit; wards see fewer, who come back more.
        pool = 600 if unit.kind == IN else int(3000 * unit.volume)
        ids = unit_index * 5000 + rng.integers(0, pool, size=total)
        subjects = np.char.mod("P%06d", ids)
    return pd.DataFrame(
        {
            "measure_code": measure.code,
            "unit_code": unit.code,
            "date": np.datetime_as_string(dates, unit="D"),
            "value": text,
            "subject_key": subjects,
        }
    )


def _aggregate_rows(
    measure: DemoMeasure,
    unit: DemoUnit,
    week_starts: pd.DatetimeIndex,
    volume: np.ndarray,
    level: np.ndarray,
    end: date,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Pre-aggregated rows, one per period: the exposure does not scale (one row each)."""
    draw = measure.draw
    if unit.kind == IN:
        # Bed days: beds × 7 × occupancy (psychiatric wards run close to full).
        occupancy = np.clip(rng.normal(0.93, 0.05, len(week_starts)), 0.6, 1.05)
        exposure = np.round(unit.beds * 7 * occupancy)
    else:
        exposure = np.round(rng.poisson(draw.rows_out * unit.volume * volume))
    exposure = np.maximum(exposure, 1)
    periods = week_starts.to_numpy().astype("datetime64[D]")
    if measure.frequency == Frequency.MONTH:
        # Calendar months wholly inside the data; each takes its middle week's level and
        # volume, and the exposure of its number of days.
        months = pd.date_range(week_starts[0] + pd.offsets.MonthBegin(0), end, freq="MS")
        months = months[months + pd.offsets.MonthEnd(0) <= pd.Timestamp(end)]
        middle = np.clip((months + pd.Timedelta(days=14) - week_starts[0]).days // 7, 0, None)
        exposure = exposure[middle] * months.days_in_month.to_numpy() / 7
        exposure, level = np.maximum(np.round(exposure), 1), level[middle]
        periods = months.to_numpy().astype("datetime64[D]")
    events = rng.poisson(np.maximum(level, 0.0) / measure.rate_per * exposure)
    return pd.DataFrame(
        {
            "measure_code": measure.code,
            "unit_code": unit.code,
            "period_start": np.datetime_as_string(periods, unit="D"),
            "numerator": events.astype(int),
            "denominator": exposure.astype(int),
        }
    )


def demo_data(*, end: date, weeks: int = WEEKS, scale: float = 1.0) -> DemoData:
    """The demo's rows as the two import files hold them: patient-level and pre-aggregated.

    Pure (no database). ``end`` is the Sunday the data ends on; ``weeks`` how many weeks it
    covers; ``scale`` multiplies every volume (the tests load less).
    """
    if end.isoweekday() != 7:
        raise ValueError(f"The demo data ends on a Sunday, not on {end:%A %Y-%m-%d}.")
    first = _week_start(end) - timedelta(weeks=weeks - 1)
    week_starts = pd.date_range(first, periods=weeks, freq="7D")
    patient, aggregate = [], []
    for unit_index, (department, unit) in enumerate(_all_units()):
        volume, summer = _season(week_starts, unit.kind)
        for measure_index, measure in enumerate(MEASURES):
            if not _reports(measure.draw, department, unit):
                continue
            rng = np.random.default_rng([SEED, unit_index, measure_index])
            level = _levels(measure, unit, week_starts, summer, end, rng)
            if measure.draw.model == "rate":
                aggregate.append(
                    _aggregate_rows(measure, unit, week_starts, volume, level, end, rng)
                )
            else:
                rows = _patient_rows(
                    measure, unit, unit_index, week_starts, volume, level, scale, rng
                )
                if rows is not None:
                    patient.append(rows)
    # One extract sorted as it would come: by measure, unit and date.
    patient_frame = pd.concat(patient, ignore_index=True).sort_values(
        ["measure_code", "unit_code", "date"], kind="stable", ignore_index=True
    )
    return DemoData(patient=patient_frame, aggregate=pd.concat(aggregate, ignore_index=True))


# --- loading --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DemoLogin:
    username: str
    role: str
    where: str


@dataclass
class DemoSummary:
    #: False when the demo was already there and nothing was done.
    created: bool
    end: date | None
    password: str
    logins: list[DemoLogin]
    departments: int = 0
    units: int = 0
    measures: int = 0
    forums: int = 0
    observations: int = 0
    initiatives: int = 0
    meetings: int = 0
    batches: list[int] = field(default_factory=list)
    seconds: float = 0.0


def demo_exists() -> bool:
    return Division.objects.filter(code=DIVISION_CODE).exists()


def demo_logins() -> list[DemoLogin]:
    """The role accounts and where each sits, for the table printed after every run."""
    forums = {}
    for user in USERS:
        places = [
            f"{str(MembershipRole(role).label).lower()} of {forum}"
            for forum, role in user.memberships
        ]
        places += [f"{title}, {code}" for code, title, _manager in user.affiliations]
        if user.superuser:
            places.append("superuser (also /admin/)")
        forums[user.username] = "; ".join(places)
    return [DemoLogin(u.username, u.role, forums[u.username]) for u in USERS if u.is_role_account]


def demo_load(
    *,
    end: date | None = None,
    reset: bool = False,
    weeks: int = WEEKS,
    scale: float = 1.0,
    log: Callable[[str], None] = lambda message: None,
) -> DemoSummary:
    """Create the demo division with its people, forums, measures and data, once.

    When the demo division exists and ``reset`` is false, nothing is done (a fast check, so
    ``make run`` can call this on every start). ``reset`` deletes the demo first. Accounts
    with the demo's usernames are created, or set to the demo password when the demo is
    (re)created. All or nothing: on any error nothing is left behind.
    """
    started = time.monotonic()
    today = timezone.localdate()
    end = end or demo_end_date(today)
    if end > today:
        raise DemoError(f"The end date {end} is in the future.")
    if end.isoweekday() != 7:
        raise DemoError(f"The data ends on a Sunday; {end} is a {end:%A}.")
    if weeks < 1:
        raise DemoError("The demo needs at least one week of data.")
    if not reset and demo_exists():
        return DemoSummary(
            created=False, end=demo_loaded_end(), password=PASSWORD, logins=demo_logins()
        )
    stored: list[ImportBatch] = []
    try:
        with transaction.atomic():
            if reset:
                log("Deleting the demo division and its data…")
                demo_delete()
            else:
                # Left by a demo whose division was deleted by hand: the importer would take
                # the new files for repeats of them and import nothing.
                _delete_demo_batches()
            _check_free()
            log("Creating the organisation, people, forums and measures…")
            units = _create_organisation()
            users = _create_users(units)
            _create_forums(units, users)
            _create_measures(units, users)
            log(f"Drawing {weeks} weeks of data ending {end}…")
            data = demo_data(end=end, weeks=weeks, scale=scale)
            batches = _import(data, users[UPLOADER], stored, log)
    except BaseException:
        for batch in stored:  # the files outlive a rolled-back transaction
            batch.file.delete(save=False)
        raise
    # The dashboards read series only: compute them now rather than wait for a worker.
    log("Computing the series (aggregation and SPC)…")
    series_recompute(
        measure_ids=list(
            Measure.objects.filter(code__in=[m.code for m in MEASURES]).values_list("pk", flat=True)
        )
    )
    # After the series: meeting agendas are proposed from the measures' signals too.
    log("Creating the improvement work: initiatives, meetings, votes, scale-up…")
    try:
        with transaction.atomic():
            work = demo_workflow_load(end=end, users=users, log=log)
    except BaseException:
        demo_delete()
        raise
    return DemoSummary(
        created=True,
        end=end,
        password=PASSWORD,
        logins=demo_logins(),
        departments=len(DEPARTMENTS),
        units=len(units),
        measures=len(MEASURES),
        forums=Forum.objects.filter(division__code=DIVISION_CODE).count(),
        observations=sum(batch.rows_new for batch in batches),
        initiatives=work["initiatives"],
        meetings=work["meetings"],
        batches=[batch.pk for batch in batches],
        seconds=time.monotonic() - started,
    )


def demo_delete() -> None:
    """Delete the demo division, its forums, its measures and every demo import batch.

    People are kept (they may own other things); their demo memberships and affiliations go
    with the forums and units.
    """
    division = Division.objects.filter(code=DIVISION_CODE).first()
    demo_codes = Q(code__in=[m.code for m in MEASURES])
    if division is None:
        units = Unit.objects.none()
        measures = Measure.objects.filter(demo_codes)
    else:
        units = Unit.objects.filter(department__division=division)
        measures = Measure.objects.filter(
            demo_codes | Q(unit__in=units) | Q(department__division=division)
        )
    try:
        if division is not None:
            _delete_workflow(division)
        _delete_demo_batches()
        Observation.objects.filter(Q(unit__in=units) | Q(measure__in=measures)).delete()
        measures.delete()
        if division is None:
            return
        Forum.objects.filter(division=division).delete()
        units.delete()
        Department.objects.filter(division=division).delete()
        division.delete()
    except ProtectedError as exc:
        names = ", ".join(sorted({str(obj) for obj in exc.protected_objects})[:5])
        raise DemoError(f"The demo cannot be deleted: other data refers to it ({names}).") from exc


def _delete_workflow(division: Division) -> None:
    """The improvement work first: it refers to the forums, units and measures (PROTECT)."""
    initiatives = Initiative.objects.filter(forum__division=division)
    VotingRound.objects.filter(initiative__in=initiatives).delete()
    for attachment in Attachment.objects.filter(initiative__in=initiatives):
        attachment.file.delete(save=False)
    PDSACycle.objects.filter(initiative__in=initiatives).delete()
    SupportRequest.objects.filter(initiative__in=initiatives).delete()
    Adoption.objects.filter(initiative__in=initiatives).delete()
    initiatives.delete()


def _delete_demo_batches() -> None:
    for batch in ImportBatch.objects.filter(original_name__startswith=FILE_PREFIX):
        batch.file.delete(save=False)
        batch.delete()  # and its observations


def _check_free() -> None:
    """Refuse to build the demo over departments, units or measures of the same codes."""
    taken = [
        *Measure.objects.filter(code__in=[m.code for m in MEASURES]).values_list("code", flat=True),
        *Department.objects.filter(code__in=[d.code for d in DEPARTMENTS]).values_list(
            "code", flat=True
        ),
        *Unit.objects.filter(code__in=[u.code for _d, u in _all_units()]).values_list(
            "code", flat=True
        ),
    ]
    if taken:
        raise DemoError(
            "Codes the demo uses are taken outside the demo division: "
            + ", ".join(sorted(taken))
            + ". Run load_demo --reset to replace the measures; rename the departments or units."
        )


def _create_organisation() -> dict[str, Unit]:
    division = Division.objects.create(code=DIVISION_CODE, name=DIVISION_NAME)
    units: dict[str, Unit] = {}
    for demo_department in DEPARTMENTS:
        department = Department.objects.create(
            division=division, code=demo_department.code, name=demo_department.name
        )
        for demo_unit in demo_department.units:
            units[demo_unit.code] = Unit.objects.create(
                department=department, code=demo_unit.code, name=demo_unit.name, kind=demo_unit.kind
            )
    return units


def _create_users(units: dict[str, Unit]) -> dict[str, AbstractUser]:
    User = get_user_model()
    password = make_password(PASSWORD)  # hashed once: the hasher is slow on purpose
    users = {}
    for demo_user in USERS:
        user = User.objects.filter(username=demo_user.username).first() or User(
            username=demo_user.username
        )
        user.first_name, user.last_name = demo_user.first_name, demo_user.last_name
        user.email = f"{demo_user.username}@demo.invalid"
        user.is_active = True
        user.is_staff = user.is_superuser = demo_user.superuser
        user.password = password
        user.save()
        users[demo_user.username] = user
        for code, title, manager in demo_user.affiliations:
            Affiliation.objects.create(
                user=user, unit=units[code], title=title, is_first_line_manager=manager
            )
    return users


def _create_forums(units: dict[str, Unit], users: dict[str, AbstractUser]) -> None:
    division = Division.objects.get(code=DIVISION_CODE)
    forums: dict[str, Forum] = {}
    shared = {code: name for name, codes in SHARED_UNIT_FORUMS.items() for code in codes}
    for demo_department in DEPARTMENTS:
        for demo_unit in demo_department.units:
            name = shared.get(demo_unit.code) or _unit_forum_name(demo_unit)
            if name not in forums:
                forums[name] = Forum.objects.create(
                    kind=ForumKind.UNIT_FORUM, name=name, division=division
                )
            forums[name].units.add(units[demo_unit.code])
        name = _department_group_name(demo_department)
        forums[name] = Forum.objects.create(
            kind=ForumKind.DEPARTMENT_GROUP,
            name=name,
            division=division,
            department=units[demo_department.units[0].code].department,
        )
    for kind, name in (
        (ForumKind.SUPPORT_UNIT, SUPPORT_UNIT_NAME),
        (ForumKind.DIVISION_BOARD, BOARD_NAME),
    ):
        forums[name] = Forum.objects.create(kind=kind, name=name, division=division)
    Membership.objects.bulk_create(
        Membership(forum=forums[forum], user=users[u.username], role=role)
        for u in USERS
        for forum, role in u.memberships
    )


def _create_measures(units: dict[str, Unit], users: dict[str, AbstractUser]) -> None:
    departments = {d.code: d for d in Department.objects.filter(division__code=DIVISION_CODE)}
    for spec in MEASURES:
        measure = Measure(
            code=spec.code,
            name=spec.name,
            description=spec.description,
            computation=spec.computation,
            kind=spec.kind,
            direction=spec.direction,
            display_unit=spec.display_unit,
            rate_per=spec.rate_per,
            target=Decimal(spec.target) if spec.target is not None else None,
            frequency=spec.frequency,
            scope=spec.scope,
            department=departments[spec.owner] if spec.scope == Scope.DEPARTMENT else None,
            unit=units[spec.owner] if spec.scope == Scope.UNIT else None,
            face=spec.face,
            instrument=spec.instrument,
            data_source=spec.data_source,
            value_min=spec.value_min,
            value_max=spec.value_max,
            minimum_n=spec.minimum_n,
            recording_handbook=spec.recording_handbook,
            owner=users[spec.contact],
        )
        measure.full_clean()  # the demo's definitions obey the same rules as the admin's
        measure.save()


def _import(
    data: DemoData, uploader: AbstractUser, stored: list[ImportBatch], log: Callable[[str], None]
) -> list[ImportBatch]:
    """Both files through the real import path: batch, validation, bulk writer."""
    batches = []
    with tempfile.TemporaryDirectory(prefix="lhs-demo-") as folder:
        for name, frame in (("patient-level", data.patient), ("aggregated", data.aggregate)):
            if frame.empty:
                continue
            path = Path(folder) / f"{FILE_PREFIX}{name}.csv"
            frame.to_csv(path, index=False)
            log(f"Importing {path.name} ({len(frame):,} rows)…")
            with path.open("rb") as fh:
                batch = import_batch_create(
                    user=uploader,
                    upload=File(fh, name=path.name),
                    source=ImportSource.COMMAND,
                    enqueue=False,
                )
            stored.append(batch)
            batch = import_batch_process(batch_id=batch.pk) or batch
            batch.refresh_from_db()
            if batch.status != ImportStatus.SUCCEEDED:
                problems = "; ".join(
                    f"row {e['row']} {e['column']} {e['value']!r}: {e['message']}"
                    for e in batch.rendered_errors[:10]
                )
                raise DemoError(
                    f"Import of {path.name} (batch #{batch.pk}) {batch.get_status_display()}: "
                    f"{batch.message} {problems}"
                )
            batches.append(batch)
    return batches
