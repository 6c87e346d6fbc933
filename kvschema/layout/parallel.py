"""The parallel layout a document's specs are one rank of (absent: the whole model).

A layout document that carries ``parallelism`` describes what one rank of that layout
allocates: attention heads already divided by ``tensor_parallel_size``, Mamba state already
split.  Without it, the specs are the whole model's, and a planner shards them once.

>>> scope = Parallelism(tensor_parallel_size=4)
>>> scope.tensor_parallel_size, scope.pipeline_parallel_size, scope.describe()
(4, 1, 'one rank of tensor_parallel_size=4')
"""

from typing import Annotated

from annotated_types import Ge
from pydantic import BaseModel, ConfigDict, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from kvschema.spec.union import PositiveInt

__all__ = ["Parallelism"]


class Parallelism(BaseModel):
    """The parallel layout whose one rank the specs describe.

    ``pipeline_stage`` names the stage when the document holds only that stage's layers;
    absent, it holds every stage's layers (each rank's specs, as a plan writes them).

    >>> Parallelism(tensor_parallel_size=2, pipeline_parallel_size=2, pipeline_stage=1).describe()
    'one rank of tensor_parallel_size=2, pipeline stage 1 of 2'
    >>> Parallelism(pipeline_parallel_size=2, pipeline_stage=2)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Parallelism
    ...
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    tensor_parallel_size: PositiveInt = Field(
        default=1, description="Ranks the attention heads (and state) are split over."
    )
    pipeline_parallel_size: PositiveInt = Field(
        default=1, description="Pipeline stages the layers are split over."
    )
    pipeline_stage: Annotated[int, Strict(), Ge(0)] | None = Field(
        default=None,
        description="The stage whose layers the document holds (0-based); absent: every stage.",
    )

    @model_validator(mode="after")
    def _stage_in_range(self) -> "Parallelism":
        stage = self.pipeline_stage
        if stage is not None and stage >= self.pipeline_parallel_size:
            raise PydanticCustomError(
                "pipeline_stage_out_of_range",
                "pipeline_stage {stage} is not a stage of pipeline_parallel_size={pp} "
                "(stages are 0..{last})",
                {
                    "stage": stage,
                    "pp": self.pipeline_parallel_size,
                    "last": self.pipeline_parallel_size - 1,
                },
            )
        return self

    def describe(self) -> str:
        """The scope in words, for messages."""
        text = f"one rank of tensor_parallel_size={self.tensor_parallel_size}"
        if self.pipeline_stage is not None:
            text += f", pipeline stage {self.pipeline_stage} of {self.pipeline_parallel_size}"
        return text
