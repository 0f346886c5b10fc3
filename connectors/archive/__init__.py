"""The archive of the input topics in the object store: Avro container files by topic, hour,
partition and offsets (the layout), written exactly once per record, read back in offset order."""

from connectors.archive.files import ARCHIVE_SCHEMA, ArchivedRecord, decode_file, encode_file
from connectors.archive.layout import ROOT, ArchivedFile, hour_of, parse_key
from connectors.archive.reader import ArchiveReader
from connectors.archive.retention import sweep
from connectors.archive.writer import ArchiveWriter

__all__ = [
    "ARCHIVE_SCHEMA",
    "ROOT",
    "ArchiveReader",
    "ArchiveWriter",
    "ArchivedFile",
    "ArchivedRecord",
    "decode_file",
    "encode_file",
    "hour_of",
    "parse_key",
    "sweep",
]
