"""The partner API's input serializers copy their declared fields shallowly: nothing leaks between requests."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

from rest_framework.serializers import Serializer

from partners.serializers import EventInSerializer, LocationFixInSerializer


def body(n: int, **overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "external_id": f"ext-{n}",
        "type": "police.emergency_video",
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "location": {"lat": 37.5 + n / 1000, "lon": 126.9, "accuracy_m": n},
    }
    payload.update(overrides)
    return payload


def test_each_serializer_has_its_own_bound_fields_and_the_declared_ones_stay_unbound():
    one, two = EventInSerializer(data=body(1)), EventInSerializer(data=body(2))

    for name, declared in EventInSerializer._declared_fields.items():
        assert one.fields[name] is not two.fields[name] is not declared
        assert one.fields[name].parent is one and two.fields[name].parent is two
        assert getattr(declared, "parent", None) is None, name
    nested_one, nested_two = one.fields["location"], two.fields["location"]
    assert isinstance(nested_one, Serializer) and isinstance(nested_two, Serializer)
    assert nested_one.fields["lat"] is not nested_two.fields["lat"]
    assert nested_one.fields["lat"].parent is nested_one
    assert "fields" not in EventInSerializer._declared_fields["location"].__dict__


def test_errors_of_one_request_never_show_in_the_next():
    bad = EventInSerializer(
        data=body(1, external_id=7, location={"lat": 91, "lon": "x"}, occurred_at="yesterday")
    )
    good = EventInSerializer(data=body(2))

    assert not bad.is_valid()
    assert good.is_valid(), good.errors
    assert set(bad.errors) == {"external_id", "location", "occurred_at"}
    assert set(bad.errors["location"]) == {"lat", "lon"}
    assert good.to_event().lat == 37.502 and good.to_event().external_id == "ext-2"
    again = EventInSerializer(data=body(3, location={"lat": 91, "lon": 200}))
    assert not again.is_valid() and set(again.errors["location"]) == {"lat", "lon"}
    fix = LocationFixInSerializer(data={"lat": "1", "lon": 2})
    assert not fix.is_valid() and set(fix.errors) == {"lat"}


def test_threads_validating_at_once_each_get_their_own_result():
    results: dict[int, Any] = {}
    start = threading.Barrier(8)

    def validate(n: int) -> None:
        start.wait()
        for round_ in range(200):
            valid = (n + round_) % 2 == 0
            serializer = EventInSerializer(data=body(n, **({} if valid else {"location": {"lat": 99}})))
            ok = serializer.is_valid()
            if ok != valid or (ok and serializer.validated_data["external_id"] != f"ext-{n}"):
                results[n] = serializer.errors or serializer.validated_data
                return
            if not ok and set(serializer.errors["location"]) != {"lat", "lon"}:
                results[n] = serializer.errors
                return
        results[n] = "ok"

    threads = [threading.Thread(target=validate, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == dict.fromkeys(range(8), "ok")
