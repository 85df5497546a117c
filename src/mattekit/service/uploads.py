"""Read a request body into memory, refusing it (413) as soon as it passes the byte limit.

Starlette's own form parsing spools files to temporary files and only checks sizes afterwards;
here the body is counted while it streams in and parsed with python-multipart's push parser, so
an oversized upload costs at most ``limit`` bytes of memory and never touches the file system.
File names sent by the client are ignored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from starlette.requests import Request

from ..errors import InvalidInput, UploadTooLarge
from .errors import BadRequest

FILE_FIELDS = ("file", "bg_file")
MAX_FIELDS = 64
MAX_FIELD_BYTES = 4096


class Sink(Protocol):
    """Where a streamed file part goes (an open file, or anything with ``write``)."""

    def write(self, data: bytes, /) -> object: ...


@dataclass
class Upload:
    """Text fields and file parts of one request, all in memory."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    saved: dict[str, int] = field(default_factory=dict)  # bytes streamed into a ``sinks`` file, by field

    def size(self, name: str) -> int | None:
        """Bytes the file part ``name`` had (kept or streamed), None when it was not sent."""
        if name in self.files:
            return len(self.files[name])
        return self.saved.get(name)


def require_file(upload: Upload, what: str, name: str = "file") -> None:
    """Refuse a request without its file, or with an empty one, saying which it is: a page
    that sent an empty file must not be told to use a multipart field it already used."""
    size = upload.size(name)
    if size is None:
        raise InvalidInput(f"no {what}: send the {what} in the multipart field {name!r} (or as the request body)")
    if size == 0:
        raise InvalidInput(f"the {what} sent is an empty file (0 bytes): choose the file again")


def check_fields(fields: Mapping[str, str], long_fields: tuple[str, ...] = ()) -> None:
    """At most :data:`MAX_FIELDS` text fields of at most :data:`MAX_FIELD_BYTES` each (but those
    in ``long_fields``), however they came (query, urlencoded form, JSON), so no error message
    can echo a megabyte a client sent."""
    if len(fields) > MAX_FIELDS:
        raise BadRequest(f"more than {MAX_FIELDS} form fields")
    for name, value in fields.items():
        if name not in long_fields and len(value.encode("utf-8", "replace")) > MAX_FIELD_BYTES:
            raise BadRequest(f"form field {_name(name)} is longer than {MAX_FIELD_BYTES} bytes")


def merge_fields(query: Iterable[tuple[str, str]], form: Mapping[str, str]) -> dict[str, str]:
    """The query string's fields and the form's as one dict. A field given in both (or twice in
    the query) with different values is refused: one of them would be dropped without a word,
    and the client could not tell which it got. The same value twice is one value, and an empty
    one is no value (empty means unset), so it clashes with nothing."""
    fields: dict[str, str] = {}
    where: dict[str, str] = {}
    for source, pairs in (("the query string", query), ("the form", form.items())):
        for name, value in pairs:
            if value == "" and name in fields:
                continue
            if name in fields and fields[name] != value and fields[name] != "":
                places = "the query string" if where[name] == source else f"{where[name]} and {source}"
                raise BadRequest(f"the field {_name(name)} was given twice with different values (in {places}): give it once")
            fields[name], where[name] = value, source
    return fields


def _name(name: str) -> str:
    """A field's name for a message: quoted when short and printable, else described."""
    return repr(name) if len(name) <= 64 and name.isprintable() else "with a long or unprintable name"


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"the upload is larger than the limit of {limit / 1048576:.1f} MiB")


async def limited_stream(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks; raises :class:`UploadTooLarge` before the total passes ``limit``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        if chunk:
            yield chunk


async def read_upload(
    request: Request,
    limit: int,
    sinks: Mapping[str, Sink] | None = None,
    *,
    file_fields: tuple[str, ...] = FILE_FIELDS,
    what: str = "photo",
) -> Upload:
    """Multipart form, urlencoded form, or a raw image body (then it is the ``file``).

    Multipart parts named in ``file_fields`` are kept as bytes in :attr:`Upload.files`, bounded
    only by ``limit``; other parts are short UTF-8 text fields. File fields named in ``sinks``
    are written to those open files as they arrive instead of being kept in memory (video
    uploads); :attr:`Upload.saved` then says how many bytes each got. ``what`` names the main
    file in messages ("send the photo in the field 'file'").
    """
    sinks = sinks or {}
    from python_multipart.multipart import parse_options_header

    media, params = parse_options_header(request.headers.get("content-type", ""))
    if media == b"multipart/form-data":
        boundary = params.get(b"boundary")
        if not boundary:
            raise BadRequest("multipart/form-data without a boundary")
        return await _read_multipart(limited_stream(request, limit), boundary, sinks, file_fields, what)
    if "file" in sinks and media != b"application/x-www-form-urlencoded":
        upload = Upload()
        async for chunk in limited_stream(request, limit):
            sinks["file"].write(chunk)
            upload.saved["file"] = upload.saved.get("file", 0) + len(chunk)
        return upload
    body = bytearray()
    async for chunk in limited_stream(request, limit):
        body += chunk
    if media == b"application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=MAX_FIELDS)
        except (UnicodeDecodeError, ValueError):
            raise BadRequest("the form body is not valid UTF-8 form data") from None
        fields = dict(pairs)
        check_fields(fields, file_fields)
        return Upload(fields=fields)
    return Upload(files={"file": bytes(body)} if body else {})


def _wrong_field(name: str, file_fields: tuple[str, ...], what: str) -> BadRequest:
    return BadRequest(
        f"a file came in the field {_name(name)}: send the {what} in the field {file_fields[0]!r}"
        + (f" (a background picture in {file_fields[1]!r})" if len(file_fields) > 1 else "")
    )


async def _read_multipart(
    stream: AsyncIterator[bytes],
    boundary: bytes,
    sinks: Mapping[str, Sink],
    file_fields: tuple[str, ...],
    what: str,
) -> Upload:
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header

    upload = Upload()
    part: dict[str, Any] = {}
    header_field = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        part.clear()
        part.update(headers={}, data=bytearray())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_field.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part["headers"][bytes(header_field).lower()] = bytes(header_value)
        header_field.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, opts = parse_options_header(part["headers"].get(b"content-disposition", b""))
        name = opts.get(b"name")
        if name is None:
            raise BadRequest("a multipart part has no name")
        part["name"] = name.decode("utf-8", "replace")
        # A second file in one field would replace the first (a photo) or be appended to it (a
        # video streamed to disk): either way not what was sent. One per request.
        if part["name"] in upload.files or part["name"] in upload.saved:
            raise BadRequest(f"the field {_name(part['name'])} came twice: send one {what} per request")
        # curl -F image=@x.jpg: a file under another name would be read as a (too long) option.
        if b"filename" in opts and part["name"] not in file_fields and part["name"] not in sinks:
            raise _wrong_field(part["name"], file_fields, what)
        # A browser sends an optional file input left blank as a part with filename="" and no
        # bytes: not sent. A chosen file of 0 bytes has its name, and is refused for what it is.
        part["blank"] = opts.get(b"filename") == b""

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part["name"] in sinks:
            sinks[part["name"]].write(data[start:end])
            part["saved"] = part.get("saved", 0) + (end - start)
            return
        buf = part["data"]
        buf.extend(data[start:end])
        if part["name"] not in file_fields and len(buf) > MAX_FIELD_BYTES:
            raise BadRequest(
                f"form field {_name(part['name'])} is longer than {MAX_FIELD_BYTES} bytes; "
                f"send the {what} in the field {file_fields[0]!r}"
            )

    def on_part_end() -> None:
        name, data = part["name"], part["data"]
        if part["blank"] and not data and not part.get("saved"):
            return
        if name in sinks:
            upload.saved[name] = part.get("saved", 0)
            return
        if name in file_fields:
            upload.files[name] = bytes(data)
            return
        if len(upload.fields) >= MAX_FIELDS:
            raise BadRequest(f"more than {MAX_FIELDS} form fields")
        # Twice in one form, the last value counts, as in a urlencoded body and as HTML forms
        # expect (a hidden crop=false before a checkbox crop=true); only files are refused twice.
        try:
            upload.fields[name] = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"form field {name!r} is not UTF-8 text") from None

    ended: list[bool] = []

    def on_end() -> None:
        ended.append(True)

    parser = MultipartParser(
        boundary,
        {
            "on_end": on_end,
            "on_part_begin": on_part_begin,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        },
    )
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise BadRequest(f"the multipart body is malformed: {exc}") from None
    # python-multipart's finalize() accepts a body that stops anywhere: a part cut off before
    # the closing boundary would be kept (or dropped, mid-headers) as if whole, and the request
    # then refused for a photo it did send. An empty body is an empty form, not a cut-off one.
    if received and not ended:
        raise BadRequest("the upload was cut off: the multipart body ended before its closing boundary; send it again")
    return upload
