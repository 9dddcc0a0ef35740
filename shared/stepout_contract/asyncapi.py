"""The AsyncAPI document of the wire contract, generated with FastStream from the contract models.

Every input is declared as a subscriber and every output as a publisher of a CloudEvent whose
`data` is the payload model, so the document cannot drift from the code. Regenerate with
`make asyncapi` (`python -m stepout_contract.asyncapi > docs/asyncapi.json`); a test fails when
the committed document is stale.
"""

import json
from typing import Any, Literal

from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic import AwareDatetime, BaseModel, Field, create_model

from .inputs import INPUT_TYPES
from .outputs import OUTPUT_TYPES, PlanView, ProgressView

VERSION = "1"


def cloud_event_of(type_: str, model: type[BaseModel]) -> type[BaseModel]:
    """A structured-mode CloudEvent whose `data` is `model`."""
    name = "".join(part.title() for part in type_.split(".")[1:-1]) + "Event"
    fields: dict[str, Any] = {
        "specversion": (Literal["1.0"], ...),
        "id": (str, Field(description="unique per event; also the Nats-Msg-Id header")),
        "source": (str, ...),
        "type": (Literal[type_], ...),  # type: ignore[valid-type]
        "subject": (str, Field(description="the user_id")),
        "time": (AwareDatetime, ...),
        "datacontenttype": (Literal["application/json"], "application/json"),
        "data": (model, ...),
    }
    return create_model(name, **fields)


class UserQuery(BaseModel):
    user_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class HistoryQuery(UserQuery):
    limit: int = Field(100, ge=1, le=1000)


def build(prefix: str = "stepout") -> FastStream:
    broker = NatsBroker(description="stepout: paced rejection therapy over NATS JetStream (CONTRACT.md)")

    def document_input(type_: str, family: str, name: str, model: type[BaseModel]) -> None:
        event = cloud_event_of(type_, model)

        @broker.subscriber(f"{prefix}.{family}.{name}.{{user_id}}", title=f"{family}.{name}", description=model.__doc__)
        async def consume(body: event) -> None:  # type: ignore[valid-type]
            """Consumed by stepout from the input stream."""

    for type_, (family, name, model) in INPUT_TYPES.items():
        document_input(type_, family, name, model)

    for type_, (family, name, output) in OUTPUT_TYPES.items():
        broker.publisher(
            f"{prefix}.{family}.{name}.{{user_id}}",
            title=f"{family}.{name}",
            schema=cloud_event_of(type_, output),
            description=f"Published by stepout with header Nats-Msg-Id equal to the CloudEvent id ({type_}).",
        )

    def document_query(name: str, request: type[BaseModel], reply: type[BaseModel] | None) -> None:
        @broker.subscriber(f"{prefix}.query.{name}", title=f"query.{name}")
        async def answer(body: request) -> reply:  # type: ignore[valid-type]
            """Request-reply; errors are {"error": {"code", "message"}}."""
            raise NotImplementedError

    document_query("progress", UserQuery, ProgressView)
    document_query("plan", UserQuery, PlanView)
    document_query("history", HistoryQuery, None)

    return FastStream(
        broker,
        specification=AsyncAPI(broker, title="stepout", version=VERSION, description="The stepout wire contract"),
    )


app = build()


def document() -> dict[str, Any]:
    return app.schema.to_specification().to_jsonable()  # type: ignore[no-any-return,union-attr]


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
