"""Nothing a client sends to the read endpoints produces a 500 (random parameters, both engines)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import store
from fieldstation.points import Batch, Entry
from tests.factories import ChannelKeys

PARAMS = [
    "start", "end", "tz", "fields", "limit", "order", "cursor", "every", "fn", "points",
    "results", "days", "minutes", "timezone", "offset", "min", "max", "round", "timescale",
    "sum", "average", "median", "status", "location",
]  # fmt: skip
TOKENS = ["-1h", "-7d", "now", "0", "-1", "99999999999999999999", "1,2", "auto", "1h", "daily", "10",
          "Europe/Berlin", "2020-01-01", "avg,max", "desc", "true", "nan", "\x00", "é", "²"]  # fmt: skip
values = st.one_of(st.sampled_from(TOKENS), st.text(max_size=12))
queries = st.dictionaries(st.sampled_from(PARAMS), values, max_size=4)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


pytestmark = pytest.mark.channel(public=True)


@pytest.fixture
def channel(channel: ChannelKeys) -> ChannelKeys:
    """The shared channel, public, with half an hour of readings and texts."""
    keys = channel
    store.write(
        Batch(
            keys.id,
            [Entry({1: float(i), 2: "t"}, ts=1_700_000_000_000_000 + i * 60_000_000) for i in range(30)],
        )
    )
    return keys


@FUZZ
@given(query=queries, path=st.sampled_from(["readings", "buckets", "latest", "entries/latest", "export.csv"]))
def test_json_api_never_500(
    client: FlaskClient, channel: ChannelKeys, query: dict[str, str], path: str
) -> None:
    response = client.get(f"/api/v1/channels/{channel.id}/{path}", query_string=query)
    response.get_data()
    assert response.status_code < 500


@FUZZ
@given(
    query=queries,
    path=st.sampled_from(["feeds.json", "fields/1.csv", "fields/2/last", "feeds/last.txt", "status.json"]),
)
def test_thingspeak_never_500(
    client: FlaskClient, channel: ChannelKeys, query: dict[str, str], path: str
) -> None:
    assert client.get(f"/channels/{channel.id}/{path}", query_string=query).status_code < 500


@FUZZ
@given(q=st.one_of(st.text(max_size=60), st.sampled_from([
    "SELECT mean(temperature) FROM weather WHERE time > now() - 1d GROUP BY time(1h) fill(previous)",
    "SELECT * FROM weather ORDER BY time DESC LIMIT 3", "SHOW TAG VALUES WITH KEY = \"x\"",
    "SELECT count(humidity) FROM weather WHERE time > 0 GROUP BY time(1000000w)",
])), epoch=st.sampled_from([None, "s", "ms", "ns", "x"]))  # fmt: skip
def test_influxql_never_500(client: FlaskClient, channel: ChannelKeys, q: str, epoch: str | None) -> None:
    args = {"q": q, "db": "weather"} | ({"epoch": epoch} if epoch else {})
    assert client.get("/query", query_string=args).status_code < 500
