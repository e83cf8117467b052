"""The Mailjet emulator's wire behaviour, in process through httpx.ASGITransport."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from batchsms.emulator.core import EmulatorState, Script, ScriptedOutcome
from batchsms.emulator.mailjet import _region, _regions, create_app

pytestmark = pytest.mark.anyio

TOKEN = "mj-emulator-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FLIGHT = "Have a nice SMS flight with Mailjet !"



class Clock:
    now = 1033552800.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> EmulatorState:
    return EmulatorState("mailjet", clock=clock)


@pytest.fixture
async def api(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.mailjet.com") as c:
        await c.post("/__emulator/accounts", json={"credential": TOKEN, "balance": "1.00"})
        yield c


async def send(api: httpx.AsyncClient, text: str = FLIGHT, to: str = "+33600000000",
               **extra: Any) -> httpx.Response:
    return await api.post("/v4/sms-send", headers=AUTH,
                          json={"From": "MJPilot", "To": to, "Text": text, **extra})


def without_ids(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k not in {"MessageId", "ID"}} for item in items]


async def sent_like_the_stats_docs(api: httpx.AsyncClient, clock: Clock) -> list[str]:
    await api.post("/__emulator/config", json={"prices": {"FR": "0.04"}, "sent_after": 2,
                                               "delivered_after": 10**9})
    ids = []
    for at, text in ((1033552800, FLIGHT), (1033552810, "x" * 200)):
        clock.now = at
        ids.append((await send(api, text)).json()["MessageId"])
    clock.now = 1033574400
    return ids


# -- statistics: the examples of mailjet/api-documentation guides-sms/_sms-stats.md ------------

DOC_ITEMS = [
    {"From": "MJPilot", "To": "+33600000000",
     "Status": {"Code": 2, "Name": "sent", "Description": "Message sent"},
     "CreationTS": 1033552800, "SentTS": 1033552802, "SMSCount": 1,
     "Cost": {"Value": 0.04, "Currency": "EUR"}},
    {"From": "MJPilot", "To": "+33600000000",
     "Status": {"Code": 2, "Name": "sent", "Description": "Message sent"},
     "CreationTS": 1033552810, "SentTS": 1033552812, "SMSCount": 2,
     "Cost": {"Value": 0.08, "Currency": "EUR"}},
]


async def test_the_documented_list_answers_newest_first_with_both_id_keys(
        api: httpx.AsyncClient, clock: Clock) -> None:
    ids = await sent_like_the_stats_docs(api, clock)
    response = await api.get("/v4/sms?FromTS=1033552800&ToTS=1033574400", headers=AUTH)

    data = response.json()["Data"]
    # The guide's text says newest first; its example happens to list the oldest first.
    assert without_ids(data) == DOC_ITEMS[::-1]
    assert [(item["MessageId"], item["ID"]) for item in data] == [(i, i) for i in ids[::-1]]


async def test_the_documented_recipient_filter_takes_an_unencoded_plus(
        api: httpx.AsyncClient, clock: Clock) -> None:
    await sent_like_the_stats_docs(api, clock)
    await send(api, to="+4512345678")
    response = await api.get("/v4/sms?To=+33600000000", headers=AUTH)
    assert [item["To"] for item in response.json()["Data"]] == ["+33600000000"] * 2


async def test_the_documented_single_message_and_count_answers(
        api: httpx.AsyncClient, clock: Clock) -> None:
    ids = await sent_like_the_stats_docs(api, clock)
    one = await api.get(f"/v4/sms/{ids[0]}", headers=AUTH)
    count = await api.get("/v4/sms/count?FromTS=1033552800&ToTS=1033574400", headers=AUTH)
    missing = await api.get(f"/v4/sms/{uuid.uuid4()}", headers=AUTH)

    assert without_ids(one.json()["Data"]) == DOC_ITEMS[:1]
    assert count.json() == {"Count": 2}
    assert missing.status_code == 404


async def test_status_codes_filter_as_a_comma_or_and_the_first_occurrence_wins(
        api: httpx.AsyncClient, clock: Clock) -> None:
    await api.post("/__emulator/scripts", json={"number": "+4512345678", "outcome": "pending"})
    await send(api)
    await send(api, to="+4512345678")
    clock.now += 1.5

    async def codes(query: str) -> list[int]:
        response = await api.get(f"/v4/sms?{query}", headers=AUTH)
        return sorted(item["Status"]["Code"] for item in response.json()["Data"])

    assert await codes("StatusCode=1,2") == [1, 2]
    assert await codes("StatusCode=2") == [2]
    assert await codes("StatusCode=3&StatusCode=1") == []


async def test_limit_and_offset_page_through_the_list(
        api: httpx.AsyncClient, clock: Clock) -> None:
    for n in range(12):
        clock.now += 1
        await send(api, f"message {n}")
    default = await api.get("/v4/sms", headers=AUTH)
    page = await api.get("/v4/sms?Limit=3&Offset=2", headers=AUTH)
    everything = await api.get("/v4/sms?Limit=0", headers=AUTH)

    assert len(default.json()["Data"]) == 10
    assert [i["CreationTS"] for i in page.json()["Data"]] == [int(clock.now) - k
                                                             for k in (2, 3, 4)]
    assert len(everything.json()["Data"]) == 12


@pytest.mark.parametrize(("query", "code", "message", "related"), [
    ("StatusCode=1,99", "mj-0005", 'Value "99" is invalid. Allowed values are: '
                                   '0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16.', ["StatusCode"]),
    ("FromTS=yesterday", "mj-0009",
     'The datetime value "yesterday" is not a valid RFC3339 datetime format.', ["FromTS"]),
    ("Limit=ten", "mj-0004", 'Type mismatch. Expected type "integer".', ["Limit"]),
    ("Limit=1001", "mj-0025", "Value limit exceeded. Max allowed - 1000.", ["Limit"]),
])
async def test_bad_list_filters_get_the_documented_errors(
        api: httpx.AsyncClient, query: str, code: str, message: str,
        related: list[str]) -> None:
    response = await api.get(f"/v4/sms?{query}", headers=AUTH)
    body = response.json()
    assert response.status_code == 400
    assert (body["ErrorCode"], body["ErrorMessage"], body["ErrorRelatedTo"]) == (
        code, message, related)


async def test_an_rfc3339_window_is_accepted(api: httpx.AsyncClient) -> None:
    await send(api)
    response = await api.get("/v4/sms?FromTS=2002-10-02T10:00:00Z", headers=AUTH)
    assert len(response.json()["Data"]) == 1


async def test_statistics_show_only_the_tokens_own_messages(api: httpx.AsyncClient) -> None:
    await api.post("/__emulator/accounts", json={"credential": "other-token"})
    await send(api)
    other = await api.get("/v4/sms", headers={"Authorization": "Bearer other-token"})
    assert other.json() == {"Data": []}


# -- sending -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "code", "message", "related"), [
    (b'{"From": "MJPilot",', "mj-0002",
     "Malformed JSON, please review the syntax and properties types.", None),
    (b'{"From": "MJPilot", "Text": null}', "mj-0003", "Missing mandatory property.",
     ["To", "Text"]),
    (b'{"From": "MJPilot", "To": 4512345678, "Text": "Hi"}', "mj-0004",
     'Type mismatch. Expected type "string".', ["To"]),
    (b'{"From": "MJ", "To": "+4512345678", "Text": "Hi"}', "mj-0020",
     "Characters limit below the minimum for the property. Min allowed - 3.", ["From"]),
    (b'{"From": "MJPilotMJPilot", "To": "+4512345678", "Text": "Hi"}', "mj-0006",
     "Characters limit exceeded for the property. Max allowed - 11.", ["From"]),
    (b'{"From": "MJPilot", "To": "+451", "Text": "Hi"}', "mj-0020",
     "Characters limit below the minimum for the property. Min allowed - 8.", ["To"]),
    (b'{"From": "MJPilot", "To": "+4512345678", "Text": ""}', "mj-0020",
     "Characters limit below the minimum for the property. Min allowed - 1.", ["Text"]),
    (b'{"From": "MJPilot", "To": "004512345678", "Text": "Hi"}', "sms-0002",
     "Unsupported country code.", ["To"]),
])
async def test_invalid_sends_get_the_documented_errors(
        api: httpx.AsyncClient, state: EmulatorState, content: bytes, code: str, message: str,
        related: list[str] | None) -> None:
    response = await api.post("/v4/sms-send", headers=AUTH, content=content)
    body = response.json()
    assert response.status_code == 400
    assert (body["ErrorCode"], body["StatusCode"], body["ErrorMessage"]) == (code, 400, message)
    assert body.get("ErrorRelatedTo") == related
    assert state.records == []


async def test_a_unicode_text_over_five_parts_names_its_maximum(api: httpx.AsyncClient) -> None:
    fits, too_long = await send(api, "ж" * 335), await send(api, "ж" * 336)
    assert (fits.status_code, fits.json()["SmsCount"]) == (200, 5)
    assert too_long.json()["ErrorMessage"] == ("Characters limit exceeded for the property. "
                                               "Max allowed - 335.")


async def test_a_payload_over_the_limit_gets_mj_0011(api: httpx.AsyncClient) -> None:
    await api.post("/__emulator/config", json={"max_payload_mb": 0.0001})
    response = await send(api, "y" * 200)
    assert (response.status_code, response.json()["ErrorMessage"]) == (
        400, "Input payload must be less than 0.0001MB.")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic bWo6c2VjcmV0"},
                                     {"Authorization": "Bearer unknown"}])
async def test_missing_basic_or_unknown_credentials_get_401(
        api: httpx.AsyncClient, headers: dict[str, str]) -> None:
    sent = await api.post("/v4/sms-send", headers=headers, json={})
    listed = await api.get("/v4/sms", headers=headers)
    assert [sent.status_code, listed.status_code] == [401, 401]
    assert sent.json()["ErrorCode"] == "mj-0015"


async def test_every_error_carries_a_fresh_identifier(api: httpx.AsyncClient) -> None:
    first, second = [(await api.post("/v4/sms-send", json={})).json() for _ in range(2)]
    assert first["ErrorIdentifier"] != second["ErrorIdentifier"]
    assert uuid.UUID(first["ErrorIdentifier"])
    assert "ErrorRelatedTo" not in first


async def test_the_wallet_is_debited_per_part_and_refuses_when_short(
        api: httpx.AsyncClient, state: EmulatorState) -> None:
    await api.post("/__emulator/config", json={"price": "0.30"})
    first, second = await send(api, "z" * 200), await send(api, "z" * 200)
    assert first.json()["Cost"] == {"Value": 0.6, "Currency": "EUR"}
    assert second.json()["ErrorCode"] == "sms-0001"
    assert state.accounts[TOKEN].balance == Decimal("0.40")


async def test_a_scripted_rejection_answers_with_its_error(
        api: httpx.AsyncClient, state: EmulatorState) -> None:
    state.scripts["+33600000000"] = Script(ScriptedOutcome.REJECT, "sms-0003")
    response = await send(api)
    assert response.json()["ErrorMessage"] == "SMS per day limit reached."
    assert state.records == []


async def test_an_idempotency_key_is_ignored_like_the_real_api_documents_nothing(
        api: httpx.AsyncClient, state: EmulatorState) -> None:
    headers = {**AUTH, "Idempotency-Key": "same"}
    for _ in range(2):
        await api.post("/v4/sms-send", headers=headers,
                       json={"From": "MJPilot", "To": "+33600000000", "Text": FLIGHT})
    assert len(state.records) == 2


async def test_a_wrong_method_is_405(api: httpx.AsyncClient) -> None:
    response = await api.get("/v4/sms-send", headers=AUTH)
    assert response.status_code == 405


def regions_agree(to: str) -> bool:
    region, regions = _region(to), _regions(to)
    if region is None:
        return regions == ()
    return region in regions and (len(regions) > 1 or regions == (region,))


@settings(max_examples=500, deadline=None)
@given(st.text("0123456789", min_size=0, max_size=18), st.sampled_from(["+", "", "++", "+0"]))
def test_the_regions_hold_the_reference_region_of_any_number(digits: str, head: str) -> None:
    assert regions_agree(head + digits)


def test_the_regions_hold_the_reference_region_for_every_calling_code() -> None:
    for code in COUNTRY_CODE_TO_REGION_CODE:
        longest = "1" * (15 - len(str(code)))
        for rest in ("0000", "1234", "10000000", "0123456789", "9" * 12, longest):
            assert regions_agree(f"+{code}{rest}"), f"+{code}{rest}"
    assert _regions("+٤٥٢٠١٢٣٤٥٦") == (_region("+٤٥٢٠١٢٣٤٥٦"),)  # not ASCII: the reference


async def test_a_region_sharing_the_calling_code_is_resolved_when_a_setting_names_it(
        api: httpx.AsyncClient) -> None:
    us, canada, jamaica = "+12015550123", "+14165550123", "+18765550123"
    await api.post("/__emulator/config", json={"prices": {"CA": "0.05"},
                                               "unsupported_countries": ["JM"]})
    costs = [(await send(api, to=to)).json()["Cost"]["Value"] for to in (us, canada)]
    refused = (await send(api, to=jamaica)).json()
    assert costs == [0.0012, 0.05]
    assert refused["ErrorCode"] == "sms-0002"
