"""Pydantic request/response models of the HTTP API (they document the OpenAPI schema)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, field_validator

Status = Literal["queued", "running", "done", "failed", "cancelled"]
MAX_GAIN = 8.0


class ErrorResponse(BaseModel):
    detail: str = Field(description="What went wrong, in one line.")


class JobCreated(BaseModel):
    id: str = Field(description="Job id (uuid4).")
    status: Status


class StemInfo(BaseModel):
    name: str = Field(description="Stem name, e.g. 'vocals'.")
    url: str = Field(description="Download path of the stem's audio file.")
    content_type: str = Field(description="MIME type of the file, e.g. 'audio/wav'.")


class JobInfo(BaseModel):
    id: str
    status: Status
    model: str
    filename: str = Field(description="The uploaded file's name.")
    options: dict = Field(description="Separation options: shifts, stems, format.")
    created_at: float = Field(description="Unix time (seconds).")
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = Field(ge=0.0, le=1.0, description="Fraction done, 0..1.")
    stage: str = Field(description="What the job is doing now, e.g. 'separating'.")
    eta_seconds: float | None = Field(None, description="Estimated seconds left, if known.")
    error: str | None = Field(None, description="Why the job failed.")
    stems: list[StemInfo] = Field(description="Finished stems; empty until the job is done.")
    attempts: int = Field(description="Times a worker started this job.")
    duration_seconds: float | None = Field(None, description="Length of the upload.")


class JobList(BaseModel):
    jobs: list[JobInfo]


class ModelInfo(BaseModel):
    name: str
    task: str = Field(description="music, vocals, soundtrack or speech.")
    arch: str
    description: str = Field(description="One line: what the model separates.")
    sources: list[str] = Field(description="Stems the model produces, in order.")
    sample_rate: int
    trained: bool = Field(description="False for untrained (test/demo) models.")
    params: int | None = None
    default: bool = Field(False, description="The catalog's default model for its task.")


class ModelList(BaseModel):
    models: list[ModelInfo]
    default: str | None = Field(None, description="The model preselected on the page.")
    formats: list[str] = Field(description="Output formats accepted in 'format'.")
    max_upload_mb: float
    max_duration_seconds: float


class Peaks(BaseModel):
    bins: int = Field(description="Peaks per stem (fewer for very short stems).")
    sample_rate: int
    duration_seconds: float
    stems: dict[str, list[float]] = Field(description="Stem -> peak |x| per bin, 0..1+.")


class RemixRequest(BaseModel):
    gains: dict[str, float] = Field(
        default_factory=dict,
        description=f"Linear gain per stem, 0..{MAX_GAIN:g}; stems left out keep gain 1.",
        examples=[{"gains": {"vocals": 1.5, "music": 0.3}}],
    )

    @field_validator("gains")
    @classmethod
    def _finite(cls, gains: dict[str, float]) -> dict[str, float]:
        for name, gain in gains.items():
            if not math.isfinite(gain) or not 0.0 <= gain <= MAX_GAIN:
                raise ValueError(f"gain of {name!r} must be within 0..{MAX_GAIN:g}")
        return gains
