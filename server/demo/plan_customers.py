"""The demo plan's customers: who they are (name, age, occupation, city, tags, interests),
their addresses, and the hidden preferences and buying rhythm that drive what they do."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from argon2 import PasswordHasher

from server.demo.catalogue import LEAVES, Leaf
from server.demo.people import (
    AGE_BANDS,
    CHANNELS,
    EMAIL_DOMAINS,
    GIVEN_NAMES,
    INTERESTS,
    OCCUPATIONS,
    OTHER_INTERESTS,
    PHONE_PREFIXES,
    SURNAMES,
)
from server.demo.places import CITIES, COMMUNITIES, OFFICES, ROADS, City
from server.demo.plan import (
    DEMO_PASSWORD,
    Draft,
    PlannedCustomer,
    Preferences,
    Rhythm,
    Row,
    weighted,
)
from server.demo.plan_rhythms import ARCHETYPES, archetypes, draw_rhythm
from server.models import MembershipTier


def demo_password_hash(seed: int) -> str:
    """One argon2 hash of the demo password for every demo account (hashing is slow on
    purpose). Its salt comes from the seed, so that the rows stay reproducible."""
    salt = random.Random(f"salt-{seed}").randbytes(16)
    return PasswordHasher().hash(DEMO_PASSWORD, salt=salt)


def plan_customers(draft: Draft, count: int) -> None:
    """``count`` customers, each with one or two addresses, hidden preferences and a buying
    rhythm drawn from their archetype (server.demo.plan_rhythms)."""
    rng, plan = draft.rng, draft.plan
    used_emails: set[str] = set()
    for archetype in archetypes(draft, count):
        gender = "FEMALE" if rng.random() < 0.56 else "MALE"
        surname, surname_py = rng.choice(SURNAMES)
        given, given_py = rng.choice(GIVEN_NAMES[gender])
        age_band = weighted(rng, AGE_BANDS)
        occupation = weighted(rng, OCCUPATIONS)
        if age_band == "18-24" and rng.random() < 0.5:
            occupation = "学生"
        if occupation == "学生" and age_band not in ("18-24", "25-29"):
            occupation = "白领"
        if age_band == "50+" and rng.random() < 0.5:
            occupation = "退休"
        city = rng.choices(CITIES, weights=[c.weight for c in CITIES])[0]
        rhythm = draw_rhythm(draft, archetype)
        prefs = _preferences(draft, gender, age_band, occupation, city, rhythm)

        email = ""
        while not email or email in used_emails:
            if rng.random() < 0.3:
                local = str(rng.randint(10_000_000, 3_999_999_999))  # a QQ number
            else:
                sep = rng.choice(("", ".", "_"))
                local = f"{surname_py}{given_py}{sep}{rng.randint(1, 999)}"
            email = f"{local}@{rng.choice(EMAIL_DOMAINS)}"
        used_emails.add(email)
        phone = f"{rng.choice(PHONE_PREFIXES)}{rng.randint(0, 99_999_999):08d}"

        if rhythm.first is None:
            season = draft.shop_season
            created = season.moment(season.total * rng.random())
        elif rng.random() < 0.5:
            created = rhythm.first - timedelta(minutes=rng.uniform(3, 60))  # at checkout
        else:
            created = rhythm.first - timedelta(days=rng.uniform(1, 30))  # browsed first
        created = max(created, plan.history_start)

        favourite_tops = {LEAVES[c][0] for c in prefs.categories}
        tags: list[str] = []
        if occupation == "学生":
            tags.append("学生党")
        if "baby" in favourite_tops:
            tags.append("宝妈" if gender == "FEMALE" else "奶爸")
        if city.tier == 1:
            tags.append("一线城市")
        if archetype == "new":
            tags.append("新客")
        if prefs.channel == "mini_program":
            tags.append("小程序用户")
        # Declared interests say something, not everything, about what they buy.
        interests: list[str] = []
        for slug in prefs.categories:
            interest = INTERESTS[LEAVES[slug][0]]
            if rng.random() < 0.6 and interest not in interests:
                interests.append(interest)
        interests += rng.sample(OTHER_INTERESTS, k=rng.randint(1, 3))

        row: Row = {
            "email": email,
            "password_hash": plan.password_hash,
            "first_name": given,
            "last_name": surname,
            "phone": phone,
            "gender": gender,
            "age_band": age_band,
            "region": city.region,
            "city": city.name,
            "city_tier": city.tier,
            "occupation": occupation,
            "membership_tier": MembershipTier.STANDARD,
            "tags": tags,
            "interests": interests,
            "is_active": True,
            "created_at": created,
            "updated_at": created,
        }
        addresses = [_address(rng, surname + given, phone, city, created, home=True)]
        if rng.random() < 0.35:
            addresses.append(_address(rng, surname + given, phone, city, created, home=False))
        plan.customers.append(
            PlannedCustomer(
                row=row,
                city=city,
                addresses=addresses,
                prefs=prefs,
                rhythm=rhythm,
                start=created,
                end=plan.as_of,  # until their purchases are planned
            )
        )


def _preferences(
    draft: Draft, gender: str, age_band: str, occupation: str, city: City, rhythm: Rhythm
) -> Preferences:
    rng = draft.rng
    archetype = rhythm.archetype
    family_age = age_band in ("25-29", "30-34", "35-39")
    affinity = {
        "digital": 2.5 if gender == "MALE" else 1.2,
        "computers": 2.0 if gender == "MALE" else 0.6,
        "appliances": 1.5 if age_band in ("30-34", "35-39", "40-49", "50+") else 0.6,
        "beauty": 3.0 if gender == "FEMALE" else 0.3,
        "food": 1.5,
        "baby": (4.0 if gender == "FEMALE" else 1.5) if family_age else 0.1,
        "apparel": 1.5,
        "home": 1.2 if age_band != "18-24" else 0.5,
    }
    # Only categories that have products (a small catalogue leaves some empty).
    slugs = [s for s in LEAVES if draft.by_leaf[s]]
    # People like what they buy: categories whose prices suit what they spend on an order.
    spend = 100 * rhythm.mean_spend
    weights = [
        affinity[LEAVES[s][0]]
        * _leaning(archetype, LEAVES[s][1])
        * math.exp(-(math.log(draft.typical(s) / spend) ** 2) / 2)
        for s in slugs
    ]
    favourites: list[str] = []
    for _ in range(rng.choices((1, 2, 3), weights=(35, 45, 20))[0]):
        pick = rng.choices(slugs, weights=weights)[0]
        if pick not in favourites:
            favourites.append(pick)
    brands = [rng.choice(LEAVES[slug][1].brands)[0] for slug in favourites]
    sensitivity = rng.betavariate(2, 2)
    if occupation in ("学生", "退休", "工人"):
        sensitivity += 0.25
    if city.tier >= 3:
        sensitivity += 0.15
    if archetype == "big_ticket":
        sensitivity -= 0.3
    return Preferences(
        categories=favourites,
        brands=brands,
        price_sensitivity=round(min(1.0, max(0.0, sensitivity)), 3),
        activity=rng.choices(("high", "medium", "low"), weights=ARCHETYPES[archetype].activity)[0],
        archetype=archetype,
        strength=rng.uniform(0.72, 0.9),
        channel=rng.choices(CHANNELS, weights=(55, 30, 15))[0],
    )


def _leaning(archetype: str, leaf: Leaf) -> float:
    """How much a customer of ``archetype`` leans towards ``leaf``: frequent buyers to what is
    used up and bought again, big-ticket buyers to what costs a thousand yuan or more, seasonal
    buyers to what waits for a sale."""
    if archetype == "big_ticket":
        return 8.0 if leaf.price[0] >= 999 else 0.3
    if archetype in ("loyal", "regular", "churner", "new"):
        return 3.0 if leaf.consumable else 1.0
    if archetype == "seasonal":
        return 1.0 if leaf.consumable else 1.5
    return 1.0


def _address(
    rng: random.Random, name: str, phone: str, city: City, at: datetime, *, home: bool
) -> Row:
    road = f"{rng.choice(ROADS)}{rng.randint(1, 2000)}号"
    if home:
        flat = f"{rng.randint(1, 32)}{rng.randint(1, 4):02d}室"
        street = (
            f"{road}{rng.choice(COMMUNITIES)}{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元{flat}"
        )
    else:
        street = f"{road}{rng.choice(OFFICES)}{rng.randint(2, 40)}楼"
    return {
        "customer_id": None,
        "recipient_name": name,
        "phone": phone,
        "province": city.province,
        "city": city.name,
        "district": rng.choice(city.districts),
        "street": street,
        "postal_code": city.postal,
        "is_default": home,
        "created_at": at,
    }
