"""Where raw penguins come from: a local CSV, a local folder of CSVs, or an S3 prefix."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from penguins_platform.ml.cleaning import DataValidationError, read_penguins_csv

if TYPE_CHECKING:
    from botocore.client import BaseClient as S3Client


@dataclass(frozen=True)
class SourceFile:
    name: str
    content: bytes


@dataclass(frozen=True)
class RawTable:
    """The concatenated rows of every source file, and a hash of exactly those bytes."""

    frame: pd.DataFrame
    files: list[str]
    content_hash: str


def read_local(path: Path) -> list[SourceFile]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not files:
            raise DataValidationError(f"data folder {path} holds no .csv files")
        return [SourceFile(str(p), p.read_bytes()) for p in files]
    if not path.exists():
        raise DataValidationError(
            f"data file {path} does not exist; set raw_penguins' `location` to a CSV file, "
            "a folder of CSV files, or an s3://bucket/prefix/"
        )
    return [SourceFile(str(path), path.read_bytes())]


def read_s3(location: str, client: S3Client) -> list[SourceFile]:
    """Every `.csv` object under the prefix, in key order, so the hash is stable."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataValidationError(f"{location!r} names no bucket; expected s3://bucket/prefix/")
    try:
        keys: list[str] = []
        others = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].lower().endswith(".csv"):
                    keys.append(item["Key"])
                else:
                    others += 1
        if not keys:
            raise DataValidationError(
                f"{location} holds no CSV files ({others} other object(s) under the prefix)"
            )
        return [
            SourceFile(
                f"s3://{bucket}/{key}", client.get_object(Bucket=bucket, Key=key)["Body"].read()
            )
            for key in sorted(keys)
        ]
    except (ClientError, BotoCoreError) as error:
        raise DataValidationError(f"cannot read {location}: {error}") from error


def read_raw_table(location: str, s3_client: Callable[[], S3Client], root: Path) -> RawTable:
    """Read and concatenate every CSV at `location`: an s3:// prefix, or a path, relative ones
    taken from `root`. `s3_client` is called only for s3:// URIs."""
    if location.startswith("s3://"):
        sources = read_s3(location, s3_client())
    else:
        path = Path(location).expanduser()
        sources = read_local(path if path.is_absolute() else root / path)
    digest = hashlib.sha256()
    frames = []
    for source in sources:
        digest.update(source.content)
        frames.append(read_penguins_csv(source.content, source.name))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return RawTable(frame=frame, files=[s.name for s in sources], content_hash=digest.hexdigest())
