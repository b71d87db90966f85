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


class DataTooLargeError(DataValidationError):
    """The data location holds more bytes than `raw_penguins` is allowed to load."""


def check_size(location: str, sizes: dict[str, int], max_bytes: int | None) -> None:
    """Refuse, before anything is read, a location whose files add up to over `max_bytes`.

    A table read as text takes several times its file size in memory; refusing here, with
    the numbers, beats the kernel's OOM killer halfway through a run.
    """
    total = sum(sizes.values())
    if max_bytes is None or total <= max_bytes:
        return
    largest = max(sizes, key=sizes.__getitem__)
    files = (
        f"{len(sizes)} CSV files, the largest {largest} ({_size(sizes[largest])})"
        if len(sizes) > 1
        else "1 CSV file"
    )
    raise DataTooLargeError(
        f"{location} holds {_size(total)} ({total:,} bytes in {files}), over raw_penguins' "
        f"max_bytes of {_size(max_bytes)} ({max_bytes:,} bytes). Nothing was loaded. Raise "
        "the bound if this machine has the memory (about 10x the data size): the launchpad's "
        'raw_penguins config `max_bytes`, or `make train ARGS="--max-data-bytes N"`.'
    )


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    value = count / 1024
    for unit in ("KiB", "MiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


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


def read_local(path: Path, max_bytes: int | None = None) -> list[SourceFile]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".csv")
        if not files:
            raise DataValidationError(f"data folder {path} holds no .csv files")
    elif not path.exists():
        raise DataValidationError(
            f"data file {path} does not exist; set raw_penguins' `location` to a CSV file, "
            "a folder of CSV files, or an s3://bucket/prefix/"
        )
    else:
        files = [path]
    check_size(str(path), {str(p): p.stat().st_size for p in files}, max_bytes)
    return [SourceFile(str(p), p.read_bytes()) for p in files]


def read_s3(location: str, client: S3Client, max_bytes: int | None = None) -> list[SourceFile]:
    """Every `.csv` object under the prefix, in key order, so the hash is stable."""
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, prefix = location.removeprefix("s3://").partition("/")
    if not bucket:
        raise DataValidationError(f"{location!r} names no bucket; expected s3://bucket/prefix/")
    try:
        sizes: dict[str, int] = {}
        others = 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if item["Key"].lower().endswith(".csv"):
                    sizes[item["Key"]] = int(item["Size"])
                else:
                    others += 1
        if not sizes:
            raise DataValidationError(
                f"{location} holds no CSV files ({others} other object(s) under the prefix)"
            )
        check_size(
            location, {f"s3://{bucket}/{key}": size for key, size in sizes.items()}, max_bytes
        )
        return [
            SourceFile(
                f"s3://{bucket}/{key}", client.get_object(Bucket=bucket, Key=key)["Body"].read()
            )
            for key in sorted(sizes)
        ]
    except (ClientError, BotoCoreError) as error:
        raise DataValidationError(f"cannot read {location}: {error}") from error


def read_raw_table(
    location: str,
    s3_client: Callable[[], S3Client],
    root: Path,
    max_bytes: int | None = None,
) -> RawTable:
    """Read and concatenate every CSV at `location`: an s3:// prefix, or a path, relative ones
    taken from `root`. `s3_client` is called only for s3:// URIs. A location whose files add
    up to over `max_bytes` is refused before any is read."""
    if location.startswith("s3://"):
        sources = read_s3(location, s3_client(), max_bytes)
    else:
        path = Path(location).expanduser()
        sources = read_local(path if path.is_absolute() else root / path, max_bytes)
    digest = hashlib.sha256()
    frames = []
    for source in sources:
        digest.update(source.content)
        frames.append(read_penguins_csv(source.content, source.name))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return RawTable(frame=frame, files=[s.name for s in sources], content_hash=digest.hexdigest())
