"""The AsyncAPI document of the wire contract, generated with FastStream from the contract models.

Every input is declared as a subscriber and every output as a publisher of a CloudEvent whose
`data` is the payload model, every query as a subscriber whose reply is its reply model or the
error reply, and each service's dead letters as a publisher, so the document cannot drift from
the code. What FastStream cannot say (request-reply, message headers) is added to its output
from the same models. Regenerate with `make asyncapi` (`python -m stepout_contract.asyncapi >
docs/asyncapi.json`); a test fails when the committed document is stale.
"""

import json
from typing import Any, Literal

from faststream import FastStream
from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import models_json_schema

from . import dead_letters
from .dead_letters import DeadLetterBody, DeadLetterHeaders
from .envelope import CONTENT_TYPE
from .inputs import INPUT_TYPES
from .outputs import OUTPUT_TYPES
from .queries import QUERIES, ErrorReply, Query

VERSION = "1"
SCHEMAS = "#/components/schemas/"
MESSAGES = "#/components/messages/"


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


class OutputHeaders(BaseModel):
    """The NATS headers of every output. NATS may add headers of its own (`Nats-Expected-Stream`)."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

    msg_id: str = Field(
        alias=dead_letters.MSG_ID,
        description="the CloudEvent id, also when the output is published again: JetStream keeps it once",
    )
    content_type: str = Field(alias="Content-Type", json_schema_extra={"const": CONTENT_TYPE})


def build(prefix: str = "stepout") -> FastStream:
    """The FastStream application that declares every subject of the contract under `prefix`."""
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

    def document_query(query: Query) -> None:
        @broker.subscriber(
            f"{prefix}.query.{query.name}",
            title=f"query.{query.name}",
            description=f"{query.description} Request-reply, answered by the {query.answered_by}: "
            f"the reply is a {query.reply.__name__}, or an ErrorReply.",
        )
        async def answer(body: query.request) -> None:  # type: ignore[name-defined]
            """Request-reply."""

    for query in QUERIES:
        document_query(query)

    for service in dead_letters.SERVICES:
        broker.publisher(
            f"{prefix}.deadletter.{service}",
            title=f"deadletter.{service}",
            schema=DeadLetterBody,
            description=f"Inputs the {service} cannot accept, each published once with the body as sent and "
            "headers saying why; the input is then acked and never redelivered (CONTRACT §5).",
        )

    return FastStream(
        broker,
        specification=AsyncAPI(broker, title="stepout", version=VERSION, description="The stepout wire contract"),
    )


app = build()


def document(prefix: str = "stepout") -> dict[str, Any]:
    """The AsyncAPI document (3.0) of the contract with every subject under `prefix`."""
    doc: dict[str, Any] = build(prefix).schema.to_specification().to_jsonable()  # type: ignore[union-attr]
    _add_schemas(doc, [ErrorReply, *(query.reply for query in QUERIES), OutputHeaders, DeadLetterHeaders])
    for family, name, _ in OUTPUT_TYPES.values():
        message = _message_of(doc, f"{family}.{name}")
        message["headers"] = {"$ref": SCHEMAS + OutputHeaders.__name__}
        message["contentType"] = CONTENT_TYPE
    for service in dead_letters.SERVICES:
        message = _message_of(doc, f"deadletter.{service}")
        message["headers"] = {"$ref": SCHEMAS + DeadLetterHeaders.__name__}
        message["contentType"] = "application/octet-stream"
    for query in QUERIES:
        _add_reply(doc, query)
    return doc


def _add_schemas(doc: dict[str, Any], models: list[type[BaseModel]]) -> None:
    """Put the JSON schemas of `models` (and of the models they hold) beside FastStream's."""
    _, top = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMAS + "{model}")
    schemas = doc["components"]["schemas"]
    for name, schema in top["$defs"].items():
        if schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are named {name}")


def _message_of(doc: dict[str, Any], channel: str) -> dict[str, Any]:
    [ref] = [message["$ref"] for message in doc["channels"][channel]["messages"].values()]
    found: dict[str, Any] = doc["components"]["messages"][ref.removeprefix(MESSAGES)]
    return found


def _add_reply(doc: dict[str, Any], query: Query) -> None:
    """The reply of a query: a channel with no address of its own (the request's reply subject)."""
    name = f"query.{query.name}"
    channel, message = f"{name}.reply", f"{name}:Reply"
    doc["components"]["messages"][message] = {
        "title": message,
        "summary": f"{query.reply.__name__}, or ErrorReply when the query cannot be answered",
        "payload": {"oneOf": [{"$ref": SCHEMAS + query.reply.__name__}, {"$ref": SCHEMAS + ErrorReply.__name__}]},
    }
    doc["channels"][channel] = {
        "address": None,
        "description": f"The reply to a {name} request, on the request's reply subject (NATS request-reply).",
        "messages": {"Reply": {"$ref": MESSAGES + message}},
    }
    doc["operations"][name]["reply"] = {
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/Reply"}],
    }


if __name__ == "__main__":
    print(json.dumps(document(), indent=2, sort_keys=True))
