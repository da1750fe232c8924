"""Documents in and out of storage: ``_id`` rules, JSON encoding of the body, decoding of rows.

Responsible for refusing what is not a JSON object with a string ``_id`` before anything is written;
it never talks to the database.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medfabric.docdb.sqlbase import dump_json
from medfabric.errors import InvalidInput

MAX_ID_LENGTH = 2048


def check_id(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"_id must be a string, not {type(value).__name__} {value!r}")
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"_id must be 1 to {MAX_ID_LENGTH} characters long")
    if "\x00" in value:
        raise InvalidInput("_id may not contain NUL")
    return value


@dataclass(frozen=True)
class EncodedDocument:
    """A document already in its stored form: ``_id`` and the JSON text (``dump_json``) of the rest,
    made where the CPU was free (a parsing worker); the bulk loaders store it as it is."""

    doc_id: str
    body: str


def encode(document: Mapping[str, Any] | EncodedDocument, *, generate_id: bool) -> tuple[str, str]:
    """(``_id``, JSON text of the body without ``_id``); a missing ``_id`` becomes a UUID if allowed."""
    if isinstance(document, EncodedDocument):
        return check_id(document.doc_id), document.body
    if not isinstance(document, Mapping):
        raise InvalidInput(f"a document must be a JSON object, not {type(document).__name__}")
    if "_id" in document:
        doc_id = check_id(document["_id"])
    elif generate_id:
        doc_id = str(uuid.uuid4())
    else:
        raise InvalidInput("the document has no _id")
    body = {key: value for key, value in document.items() if key != "_id"}
    return doc_id, encode_body(body)


def encode_body(body: Mapping[str, Any]) -> str:
    try:
        return dump_json(body)
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"the document is not valid JSON: {error}") from None


def decode(doc_id: str | None, body: str | dict[str, Any]) -> dict[str, Any]:
    """A stored row back into a document, ``_id`` first as MongoDB returns it (None: leave it out)."""
    fields = json.loads(body) if isinstance(body, str) else body
    document: dict[str, Any] = {} if doc_id is None else {"_id": doc_id}
    document.update(fields)
    return document
