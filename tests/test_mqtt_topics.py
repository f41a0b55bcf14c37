"""MQTT topic grammar and payloads -> Batch, without a broker (fieldstation.mqtt.topics)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldstation.errors import BadRequest
from fieldstation.mqtt.listener import merge
from fieldstation.mqtt.topics import TasmotaMap, TopicConfig, loggable, parse
from fieldstation.points import Batch, Entry, parse_time
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US

TASMOTA = {
    "livingroom": TasmotaMap(7, {"AM2301.Temperature": 1, "AM2301.Humidity": 2}),
    "garden": TasmotaMap(8, {"BME280.Pressure": 3}, write_key="ABCDEFGH12345678", timezone="Europe/Berlin"),
}
CONFIG = TopicConfig(tasmota=TASMOTA, field_names=lambda channel: {"temperature": 1, "humidity": 2})


def test_thingspeak_form_payload() -> None:
    message = parse(
        "channels/12345/publish",
        b"field1=100&field2=50&lat=30.61&long=40.35&status=MQTTPUBLISH&created_at=2024-01-01T12:00:00Z",
    )
    assert message.key is None
    assert message.batch.channel_id == 12345
    (entry,) = message.batch.entries
    assert entry.values == {1: 100.0, 2: 50.0}
    assert (entry.latitude, entry.longitude, entry.status) == (30.61, 40.35, "MQTTPUBLISH")
    assert entry.ts == parse_time("2024-01-01T12:00:00Z")


def test_thingspeak_payload_key_and_empty_fields() -> None:
    message = parse("channels/3/publish", b"api_key=KEY1&field1=21.5&field2=&field3=open")
    assert message.key == "KEY1"
    assert message.batch.entries[0].values == {1: 21.5, 3: "open"}
    assert message.batch.entries[0].ts is None


def test_thingspeak_single_field() -> None:
    message = parse("channels/9/publish/fields/field4", b" 45 ")
    assert message.batch.entries == [Entry({4: 45.0})]


def test_old_thingspeak_key_in_topic() -> None:
    message = parse("channels/9/publish/XYZ0123456789ABC", b"field1=1")
    assert message.key == "XYZ0123456789ABC"
    assert parse("channels/9/publish/fields/field2/XYZ0123456789ABC", b"2").key == "XYZ0123456789ABC"


def test_json_entries_by_number_name_and_epoch() -> None:
    payload = {
        "api_key": "K",
        "entries": [
            {"created_at": 1_700_000_000, "fields": {"1": 20.5, "humidity": 40}, "status": "ok"},
            {"timestamp": "2024-01-01T00:00:00+02:00", "values": {"field1": 19}, "latitude": 1.5},
        ],
    }
    message = parse("fieldstation/42/entries", json.dumps(payload).encode(), CONFIG)
    assert message.key == "K"
    first, second = message.batch.entries
    assert first.values == {1: 20.5, 2: 40.0} and first.ts == 1_700_000_000_000_000
    assert second.values == {1: 19.0} and second.ts == parse_time("2023-12-31T22:00:00Z")
    assert second.latitude == 1.5


def test_json_single_entry_and_list() -> None:
    single = parse("fieldstation/1/entries", b'{"fields": {"temperature": 3}}', CONFIG)
    assert single.batch.entries == [Entry({1: 3.0})]
    listed = parse("fieldstation/1/entries", b'[{"fields": {"1": 1}}, {"fields": {"2": 2}}]', CONFIG)
    assert len(listed.batch.entries) == 2


def test_tasmota_mapping() -> None:
    payload = b'{"Time":"2018-03-02T18:25:03","AM2301":{"Temperature":22.6,"Humidity":32.4},"TempUnit":"C"}'
    message = parse("tele/livingroom/SENSOR", payload, CONFIG)
    assert message.batch.channel_id == 7
    assert message.batch.device == "livingroom"
    assert message.batch.entries == [Entry({1: 22.6, 2: 32.4})]  # server time: no timezone configured
    garden = parse(
        "tele/garden/SENSOR", b'{"Time":"2018-03-02T18:25:03","BME280":{"Pressure":1013.2}}', CONFIG
    )
    assert garden.key == "ABCDEFGH12345678"
    assert garden.batch.entries[0].ts == parse_time("2018-03-02T17:25:03Z")


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("channels/abc/publish", b"field1=1", "not a channel id"),
        ("channels/0/publish", b"field1=1", "not a channel id"),
        ("channels/1/publish", b"", "no values"),
        ("channels/1/publish", b"field1=nan", "finite"),
        ("channels/1/publish", b"field1=1&bogus=2", "unknown parameter"),
        ("channels/1/publish", b"\xff\xfe", "UTF-8"),
        ("channels/1/publish/fields/field0", b"1", "not a field"),
        ("channels/1/publish/fields/field1", b"", "empty value"),
        ("channels/1/publish/a/b/c/d", b"1", "unknown ThingSpeak topic"),
        ("channels/1/publish/bad-key!", b"field1=1", "malformed"),
        ("fieldstation/1/entries", b"{", "not JSON"),
        ("fieldstation/1/entries", b"[]", "non-empty list"),
        ("fieldstation/1/entries", b'{"fields": {"nope": 1}}', "no field named"),
        ("fieldstation/1/entries", b'{"fields": {"1": 1}, "extra": 1}', "unknown entry key"),
        ("fieldstation/1/entries", b'{"fields": {"1": 1e999}}', "finite"),
        ("fieldstation/1/entries", b'{"fields": {"1": 1}, "created_at": "yesterday"}', "ISO 8601"),
        ("fieldstation/1/entries", b"[" * 100_000, "JSON"),
        ("tele/unknown/SENSOR", b"{}", "no Tasmota mapping"),
        ("tele/livingroom/SENSOR", b'{"AM2301": {}}', "no values"),
        ("tele/livingroom/STATE", b"{}", "unknown topic"),
        ("home/livingroom/temperature", b"21.5", "unknown topic"),
    ],
)
def test_rejections_say_why(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(topic, payload, CONFIG)
    assert reason in caught.value.message


def test_merge_groups_by_channel_and_timestamp() -> None:
    batches = [
        Batch(1, [Entry({1: 1.0}, ts=10, status="a")]),
        Batch(2, [Entry({1: 5.0})]),
        Batch(1, [Entry({2: 2.0}, ts=10), Entry({1: 3.0}, ts=11)]),
        Batch(1, [Entry({1: 4.0}, ts=10)]),
    ]
    merged = {b.channel_id: b for b in merge(batches)}
    assert merged[1].entries == [Entry({1: 4.0, 2: 2.0}, ts=10, status="a"), Entry({1: 3.0}, ts=11)]
    assert merged[2].entries == [Entry({1: 5.0})]


def _check_valid(batch: Batch) -> None:
    assert batch.channel_id > 0
    assert batch.entries
    for entry in batch.entries:
        assert entry.values or entry.status is not None
        assert all(number >= 1 for number in entry.values)
        assert all(isinstance(v, str) or math.isfinite(v) for v in entry.values.values())
        assert entry.ts is None or MIN_TS_US <= entry.ts <= MAX_TS_US


PARTS = ["channels", "publish", "fields", "field1", "field0", "1", "42", "fieldstation", "entries", "tele"]
topic_parts = st.sampled_from([*PARTS, "livingroom", "SENSOR", "KEY", "", "+", "#", "x"])
topics_st = st.one_of(
    st.text(max_size=60),
    st.lists(topic_parts, min_size=1, max_size=6).map("/".join),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
entry_like = st.fixed_dictionaries(
    {},
    optional={
        "fields": st.dictionaries(st.sampled_from(["1", "field2", "temperature", "0", "x"]), json_values),
        "created_at": json_values,
        "status": json_values,
        "latitude": json_values,
    },
)
FORM_KEYS = st.sampled_from(["field1", "field9", "status", "lat", "created_at", "api_key"])
payloads = st.one_of(
    st.binary(max_size=80),
    st.text(max_size=80).map(str.encode),
    json_values.map(lambda v: json.dumps(v).encode()),
    entry_like.map(lambda v: json.dumps(v).encode()),
    st.lists(st.tuples(FORM_KEYS, st.text(max_size=12))).map(
        lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode()
    ),
)


@settings(max_examples=400, deadline=None)
@given(topic=topics_st, payload=payloads)
def test_any_message_parses_or_is_rejected_with_a_reason(topic: str, payload: bytes) -> None:
    try:
        message = parse(topic, payload, CONFIG)
    except BadRequest as exc:
        reason = exc.message
        assert reason, "a rejection must say why"
        return
    _check_valid(message.batch)


@settings(max_examples=200, deadline=None)
@given(device=st.sampled_from(["livingroom", "garden"]), payload=json_values)
def test_any_tasmota_payload_parses_or_is_rejected(device: str, payload: object) -> None:
    doc = {"Time": "2018-03-02T18:25:03", "AM2301": {"Temperature": payload}, "BME280": {"Pressure": payload}}
    try:
        message = parse(f"tele/{device}/SENSOR", json.dumps(doc).encode(), CONFIG)
    except BadRequest as exc:
        reason = exc.message
        assert reason, "a rejection must say why"
        return
    _check_valid(message.batch)


@settings(max_examples=300, deadline=None)
@given(
    pairs=st.lists(
        st.tuples(
            FORM_KEYS,
            st.text(alphabet=st.characters(exclude_characters="&=%+", exclude_categories=["Cs"]), max_size=8),
        )
    )
)
def test_form_fast_path_reads_like_parse_qsl(pairs: list[tuple[str, str]]) -> None:
    """Payloads without % or + skip urllib's parse_qsl; an ignored quoted parameter forces it."""
    payload = "&".join(f"{k}={v}" for k, v in pairs)
    outcomes = []
    for text in (payload, "headers=%20&" + payload):
        try:
            outcomes.append(repr(parse("channels/1/publish", text.encode()).batch.entries))
        except BadRequest as exc:
            outcomes.append(exc.message)
    assert outcomes[0] == outcomes[1]


@pytest.mark.parametrize(
    ("topic", "shown"),
    [
        ("channels/1/publish/TJTLQG5AZL1A5TMJ", "channels/1/publish/TJTL…"),
        ("channels/3/publish/fields/field1/7P6U8ALK41U199JL", "channels/3/publish/fields/field1/7P6U…"),
        ("channels/3/publish/fields/field1", "channels/3/publish/fields/field1"),
        ("channels/3/publish", "channels/3/publish"),
        ("tele/kitchen/SENSOR", "tele/kitchen/SENSOR"),
    ],
)
def test_logged_topics_never_show_a_whole_write_key(topic: str, shown: str) -> None:
    assert loggable(topic) == shown
