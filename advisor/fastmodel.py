"""Building pydantic models from values the engine computed itself, without validation.

The decision search makes thousands of small result objects per request (memory fits, speed phases,
deployments); pydantic's ``model_construct`` costs about three times what setting the instance's fields
directly does. Only for values that are already of the right types.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def construct(cls: type[M], **values) -> M:
    obj = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
