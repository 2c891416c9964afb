"""Building pydantic models from values the engine computed itself, without validation.

The decision search makes thousands of small result objects per request (memory fits, speed phases,
deployments); pydantic's ``model_construct`` costs about three times what setting the instance's fields
directly does. Only for values that are already of the right types.

Every model built here shares one set of its class's field names as its ``model_fields_set`` (all fields
count as set; nothing in the engine dumps with ``exclude_unset``). A set per object was a third of what the
cyclic garbage collector walked after each recommendation.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

_FIELDS: dict[type, set[str]] = {}  # model class -> its field names (shared by the objects built here)
_new, _set = object.__new__, object.__setattr__  # (BaseModel defines neither __new__ nor a slot setter of its own)


def construct(cls: type[M], **values) -> M:
    fields = _FIELDS.get(cls)
    if fields is None:
        fields = _FIELDS[cls] = set(cls.model_fields)
    obj = _new(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", fields)
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj
