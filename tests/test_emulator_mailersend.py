"""The MailerSend emulator's wire behaviour, in process, on a clock the tests move."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchsms.emulator.core import EmulatorState, Fault, FaultKind, Script, ScriptedOutcome
from batchsms.emulator.mailersend import (
    DEFAULT_RATE,
    _us_or_ca,
    _us_or_ca_reference,
    create_app,
    make_account,
    sandbox,
)
from batchsms.plan.campaign import ProviderConfig

KEY = "mlsn.emulator-test-key"
SENDER = "+12025550100"
US, CA = "+12015550123", "+14165550123"
AUTH = {"Authorization": f"Bearer {KEY}"}
START = 1_753_800_000.0  # 2025-07-29T14:40:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now



@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> EmulatorState:
    state = EmulatorState("mailersend", clock=clock, default_rate=DEFAULT_RATE)
    state.accounts[KEY] = make_account({"credential": KEY, "senders": [SENDER, "+19191234567"]})
    return state


@pytest.fixture
async def api(state: EmulatorState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="https://api.mailersend.com",
                                 headers=AUTH) as client:
        yield client


async def send(api: httpx.AsyncClient, to: list[str], text: str = "hi",
               **more: object) -> httpx.Response:
    return await api.post("/v1/sms", json={"from": SENDER, "to": to, "text": text, **more})


@pytest.mark.anyio
async def test_the_docs_send_example_is_accepted_and_personalized(state, api):
    # The request and the "Sending queued" response of docs/providers/mailersend-sms.md.
    state.config["lenient_numbers"] = True
    request = {
        "from": "+19191234567",
        "to": ["+19191234567", "+19199876543"],
        "text": "Hey {{name}}! This is just a friendly hello :D",
        "personalization": [
            {"phone_number": "+19191234567", "data": {"name": "Dummy"}},
            {"phone_number": "+19199876543", "data": {"name": "Not Dummy"}},
        ],
    }

    response = await api.post("/v1/sms", json=request)

    assert response.status_code == 202
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert len(response.headers["x-sms-message-id"]) == 24
    assert "x-sms-send-paused" not in response.headers and response.content == b""
    assert [(r.to, r.text, r.id) for r in state.records] == [
        ("+19191234567", "Hey Dummy! This is just a friendly hello :D",
         response.headers["x-sms-message-id"]),
        ("+19199876543", "Hey Not Dummy! This is just a friendly hello :D",
         response.headers["x-sms-message-id"])]


@pytest.mark.anyio
async def test_the_docs_paused_example_adds_the_paused_header(state, api):
    # "Sending paused" in docs/providers/mailersend-sms.md.
    state.accounts[KEY].extra["paused"] = {SENDER}

    response = await send(api, [US])

    assert response.status_code == 202 and response.headers["x-sms-send-paused"] == "true"
    assert response.headers["x-sms-message-id"] == state.records[0].id


@pytest.mark.anyio
async def test_the_docs_validation_example_with_the_legacy_message(state, api):
    # "Validation error" in docs/providers/mailersend-sms.md.
    state.config["validation_message"] = "legacy"

    response = await api.post("/v1/sms", json={"from": "+13125550142", "to": [US], "text": "hi"})

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"message": "The given data was invalid.",
                               "errors": {"from": ["The from field contains an invalid number."]}}


@pytest.mark.anyio
async def test_the_recorded_422_is_reproduced(state, api):
    # RESEARCH.md §2.5, recorded in mailersend-python's sms_send_basic.yaml cassette.
    state.accounts[KEY].extra["number_daily_limit"] = 0

    response = await api.post("/v1/sms", json={"from": "+1234567890", "to": ["+1234567890"],
                                               "text": "Hello, this is a test SMS message!"})

    assert response.status_code == 422
    assert response.json() == {
        "message": "The from field contains an invalid number. (and 2 more errors)",
        "errors": {"from": ["The from field contains an invalid number."],
                   "to": ["Daily quota for this number exceeded."],
                   "to.0": ["The to.0 field contains an invalid number."]}}
    assert response.headers["x-apiquota-remaining"] == "-1"
    assert response.headers["x-apiquota-reset"] == "2025-07-30T00:00:00Z"
    assert state.records == []


@pytest.mark.anyio
@pytest.mark.parametrize(("body", "message", "errors"), [
    ({}, "The from field is required. (and 2 more errors)",
     {"from": ["The from field is required."], "to": ["The to field is required."],
      "text": ["The text field is required."]}),
    ({"from": SENDER, "to": US, "text": "x" * 2049},
     "The to field must be an array. (and 1 more error)",
     {"to": ["The to field must be an array."],
      "text": ["The text field must not be greater than 2048 characters."]}),
    ({"from": [SENDER], "to": [US], "text": "hi"}, "The from field must be a string.",
     {"from": ["The from field must be a string."]}),
    ({"from": SENDER, "to": [US] * 51, "text": "hi"},
     "The to field must not have more than 50 items.",
     {"to": ["The to field must not have more than 50 items."]}),
    ({"from": SENDER, "to": [US, "12015550124"], "text": "hi",
      "personalization": [{"phone_number": CA, "data": {"a": 1}}, {"phone_number": US}]},
     "The to.1 field contains an invalid number. (and 2 more errors)",
     {"to.1": ["The to.1 field contains an invalid number."],
      "personalization.0.phone_number": ["The selected personalization.0.phone_number is "
                                         "invalid."],
      "personalization.1.data": ["The personalization.1.data field is required."]}),
])
async def test_validation_errors_are_laravel_shaped(state, api, body, message, errors):
    response = await api.post("/v1/sms", json=body)

    assert response.status_code == 422
    assert response.json() == {"message": message, "errors": errors}
    assert state.records == []


@pytest.mark.anyio
async def test_personalization_values_are_inserted_once_and_never_parsed(state, api):
    response = await send(api, [US, CA], "{{ t }}|{{missing}}|{# gone #}|{% if x %}",
                          personalization=[{"phone_number": US, "data": {"t": "{{ t }} {% x %}"}},
                                           {"phone_number": CA, "data": {"t": 42}}])

    assert response.status_code == 202
    assert [r.text for r in state.records] == ["{{ t }} {% x %}|||", "42|||"]


@pytest.mark.anyio
async def test_authentication_answers(state, api):
    unknown = await api.post("/v1/sms", headers={"Authorization": "Bearer nope"}, json={})
    missing = await api.get("/v1/sms-messages", headers={"Authorization": ""})
    state.accounts[KEY].extra["access"] = False
    forbidden = await send(api, [US])

    assert (unknown.status_code, unknown.json()) == (401, {"message": "Unauthenticated."})
    assert missing.status_code == 401 and "x-apiquota-remaining" not in missing.headers
    assert (forbidden.status_code, forbidden.json()) == (
        403, {"message": "This action is unauthorized."})


@pytest.mark.anyio
async def test_the_daily_request_quota_counts_every_request_and_resets_at_midnight(
        state, api, clock):
    state.accounts[KEY].daily_limit = 2

    answers = [await api.get("/v1/sms-messages"), await send(api, [US]), await send(api, [US])]
    clock.now += 86_400
    tomorrow = await send(api, [US])

    assert [a.status_code for a in answers] == [200, 202, 429]
    assert [a.headers["x-apiquota-remaining"] for a in answers] == ["1", "0", "0"]
    assert tomorrow.status_code == 202 and tomorrow.headers["x-apiquota-remaining"] == "1"
    assert tomorrow.headers["x-apiquota-reset"] == "2025-07-31T00:00:00Z"


@pytest.mark.anyio
async def test_the_number_quota_counts_recipients_per_day(state, api, clock):
    state.accounts[KEY].extra["number_daily_limit"] = 2

    first, second = await send(api, [US, CA]), await send(api, [US])
    clock.now += 86_400
    third = await send(api, [US])

    assert (first.status_code, second.status_code, third.status_code) == (202, 422, 202)
    assert second.json()["errors"] == {"to": ["Daily quota for this number exceeded."]}


@pytest.mark.anyio
async def test_the_rate_limit_is_60_a_minute_per_account(state, api, clock):
    answers = [await api.get("/v1/sms-messages") for _ in range(61)]
    clock.now += 60
    later = await api.get("/v1/sms-messages")

    assert [a.status_code for a in answers] == [200] * 60 + [429]
    assert answers[-1].json()["message"] == ("Your account reached its rate limit of 60 "
                                             "requests/min. Please wait before trying again.")
    assert answers[-1].headers["x-ratelimit-remaining"] == "0"
    assert later.status_code == 200


@pytest.mark.anyio
async def test_a_resource_shaped_throttle_has_no_rate_headers(state, api):
    state.config["throttle_shape"] = "resource"
    state.add_fault(Fault(FaultKind.THROTTLE, nth=1))

    response = await send(api, [US])

    assert response.status_code == 429 and "x-ratelimit-limit" not in response.headers
    assert response.text == ('{\n    "message": "You cannot create a resource at the moment. '
                             'Please wait a while before retrying."\n}')
    assert state.records == []


@pytest.mark.anyio
async def test_not_found_and_wrong_method_answers(api):
    by_id = await api.get("/v1/sms-messages/non-existent-message-id")
    elsewhere = await api.get("/v1/nothing-here")
    wrong = await api.get("/v1/sms")

    assert by_id.status_code == 404
    assert by_id.text == '{\n    "message": "Resource not found."\n}'
    assert (elsewhere.status_code, elsewhere.text) == (404, by_id.text)
    assert wrong.status_code == 405 and "Supported methods: POST." in wrong.json()["message"]


@pytest.mark.anyio
async def test_each_recipient_moves_through_its_scripted_lifecycle(state, api, clock):
    state.scripts[CA] = Script(ScriptedOutcome.FAIL, "invalid_destination")
    state.scripts["+16203221059"] = Script(ScriptedOutcome.PENDING)
    message_id = (await send(api, [US, CA, "+16203221059"], "hello")).headers["x-sms-message-id"]

    def statuses(body: dict) -> list[str]:
        return [sms["status"] for sms in body["data"]["sms"]]

    at_once = (await api.get(f"/v1/sms-messages/{message_id}")).json()
    clock.now += 1.5
    later = (await api.get(f"/v1/sms-messages/{message_id}")).json()
    clock.now += 10
    final = (await api.get(f"/v1/sms-messages/{message_id}")).json()

    assert statuses(at_once) == ["processed"] * 3
    assert statuses(later) == ["queued"] * 3
    assert statuses(final) == ["delivered", "failed", "sent"]
    failed = final["data"]["sms"][1]
    assert (failed["error_type"], failed["compiled_text"]) == ("invalid_destination", "hello")
    assert final["data"]["to"] == [US, CA, "+16203221059"] and final["data"]["paused"] is False
    assert len(final["data"]["sms_activity"]) == 4 + 4 + 3


@pytest.mark.anyio
async def test_messages_are_listed_newest_first_in_pages(state, api, clock):
    for n in range(12):
        clock.now += 1
        await send(api, [US], f"message {n}")

    first = (await api.get("/v1/sms-messages", params={"limit": 10})).json()
    second = (await api.get("/v1/sms-messages", params={"limit": 10, "page": 2})).json()
    too_small = await api.get("/v1/sms-messages", params={"limit": 5})
    too_big = await api.get("/v1/sms-messages", params={"limit": 101, "page": 0})

    assert [m["text"] for m in first["data"]][:2] == ["message 11", "message 10"]
    assert [m["text"] for m in second["data"]] == ["message 1", "message 0"]
    assert first["links"]["next"] == "https://api.mailersend.com/v1/sms-messages?page=2"
    assert second["links"]["next"] is None
    assert (second["meta"]["total"], second["meta"]["from"], second["meta"]["to"]) == (12, 11, 12)
    assert too_small.json()["errors"] == {"limit": ["The limit field must be at least 10."]}
    assert too_big.json()["errors"] == {"page": ["The page field must be at least 1."],
                                        "limit": ["The limit field must not be greater than 100."]}


@pytest.mark.anyio
async def test_activity_filters_by_date_and_status(state, api, clock):
    state.config["status_step"] = 10
    await send(api, [US], "early")
    clock.now += 100
    await send(api, [CA], "late")
    clock.now += 15

    def content(response: httpx.Response) -> list[tuple[str, str]]:
        return [(a["content"], a["status"]) for a in response.json()["data"]]

    recent = await api.get("/v1/sms-activity", params={"date_from": int(START + 50)})
    queued = await api.get("/v1/sms-activity", params={"status[]": "queued"})

    assert content(recent) == [("late", "queued"), ("late", "processed")]
    assert content(queued) == [("late", "queued"), ("early", "queued")]
    assert set(recent.json()["data"][0]) == {"from", "to", "created_at", "content", "status",
                                             "sms_message_id"}


@pytest.mark.anyio
@pytest.mark.parametrize(("params", "errors"), [
    ({"date_from": 20, "date_to": 10}, {"date_from": ["The date from field must be less than "
                                                      "date to."]}),
    ({"date_to": int(START) + 60}, {"date_to": [f"The date to field must be less than or equal "
                                                f"to {int(START)}."]}),
    ({"status[]": "read"}, {"status.0": ["The selected status.0 is invalid."]}),
    ({"date_from": "yesterday"}, {"date_from": ["The date from field must be an integer."]}),
])
async def test_activity_validation(api, params, errors):
    response = await api.get("/v1/sms-activity", params=params)

    assert response.status_code == 422 and response.json()["errors"] == errors


@pytest.mark.anyio
async def test_the_sandbox_owns_the_campaign_sender_only():
    app, env = sandbox(ProviderConfig(name="mailersend", sender=SENDER, sandbox=True))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {env['MAILERSEND_API_KEY']}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator",
                                 headers=headers) as api:
        ours = await send(api, [US])
        theirs = await api.post("/v1/sms", json={"from": "+13125550142", "to": [US], "text": "x"})

    assert ours.status_code == 202 and ours.headers["x-apiquota-remaining"] == "-1"
    assert theirs.status_code == 422
    assert json.loads(theirs.text)["errors"] == {"from": ["The from field contains an invalid "
                                                          "number."]}


def test_the_us_shortcut_rests_on_us_being_the_first_plus_one_region_by_type() -> None:
    assert phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1][0] == "US"
    assert phonenumbers.PhoneMetadata.metadata_for_region("US").leading_digits is None


@settings(max_examples=1000, deadline=None)
@given(st.text("0123456789", min_size=10, max_size=10) | st.text("0123456789", max_size=12),
       st.sampled_from(["+1", "+", "1", "+01", "+1 "]), st.booleans())
def test_the_number_check_equals_the_reference(digits: str, head: str, lenient: bool) -> None:
    number = head + digits
    assert _us_or_ca(number, lenient) == _us_or_ca_reference(number, lenient)


@pytest.mark.parametrize("number", [US, CA, "+19191234567", "+18765550123", "+12125550123\n",
                                    "+1212555012３", 12125550123, None])
def test_the_number_check_equals_the_reference_for_known_shapes(number: object) -> None:
    for lenient in (False, True):
        assert _us_or_ca(number, lenient) == _us_or_ca_reference(number, lenient)
