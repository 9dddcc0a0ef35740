"""The outbox relay publishes a page in waves: each participant's outputs in the order they were
decided, one per wave, so none can be stored behind a later one of theirs when a publish is lost and
published again; the outputs of different participants share a wave."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stepout_runtime.outbox import Output, waves

USERS = st.sampled_from(["u-a", "u-b", "u-c", "u-d"])


def output(user: str, n: int) -> Output:
    return Output(f"stepout.progress.updated.{user}", {"id": f"{user}-{n}", "type": "stepout.progress.updated.v1"})


def page(users: list[str]) -> list[Output]:
    return [output(user, n) for n, user in enumerate(users)]


@given(st.lists(USERS, max_size=60))
def test_each_participants_outputs_keep_their_order_one_per_wave(users: list[str]) -> None:
    outputs = page(users)
    found = waves(outputs)
    assert sorted(o.event["id"] for wave in found for o in wave) == sorted(o.event["id"] for o in outputs)
    for wave in found:
        assert wave and len({o.user_id for o in wave}) == len(wave)  # a participant at most once a wave
    for user in set(users):
        assert [o for wave in found for o in wave if o.user_id == user] == [o for o in outputs if o.user_id == user]
    assert len(found) == max((users.count(u) for u in set(users)), default=0)


def test_participants_share_waves_in_the_order_of_the_page() -> None:
    found = waves(page(["u-a", "u-b", "u-a", "u-c", "u-a"]))
    assert [[o.event["id"] for o in wave] for wave in found] == [["u-a-0", "u-b-1", "u-c-3"], ["u-a-2"], ["u-a-4"]]


def test_the_user_id_is_the_last_token_of_the_subject() -> None:
    assert output("u-x_1", 0).user_id == "u-x_1"
