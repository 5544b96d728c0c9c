"""Turn an uploaded file's bytes into plain text for chunking.

The type is decided from the extension AND the content: a `.pdf` that does not start like a PDF
is invalid, and a file without a known extension is sniffed (PDF / DOCX magic, other binary
formats rejected, text decoded and recognised as HTML or JSON). Every failure is an
`ExtractionError` whose `code` is one of the VS-file `last_error` codes the API exposes.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal

from django.conf import settings

ErrorCode = Literal["unsupported_file", "invalid_file"]


class ExtractionError(Exception):
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message

    def as_last_error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Extracted:
    text: str
    kind: str  # pdf, docx, html, json, csv, markdown, code, text


TEXT_KINDS: dict[str, str] = {
    ".txt": "text",
    ".text": "text",
    ".log": "text",
    ".rst": "text",
    ".tex": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".mdx": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
    ".tsv": "csv",
}
CODE_EXTENSIONS = frozenset(
    ".py .pyi .js .mjs .cjs .ts .tsx .jsx .c .h .cc .cpp .cxx .hpp .hh .cs .java .kt .kts .go .rb .php"
    " .rs .swift .scala .sh .bash .zsh .ps1 .sql .css .scss .less .lua .pl .pm .r .jl .dart .ex .exs"
    " .erl .hs .ml .vue .svelte .xml .yaml .yml .toml .ini .cfg .conf .proto .graphql .dockerfile"
    " .makefile .cmake .gradle .bat".split()
)
# Formats we recognise but cannot extract (OpenAI accepts .doc/.pptx; we don't have parsers).
UNSUPPORTED_EXTENSIONS = frozenset(
    ".doc .ppt .pptx .xls .xlsx .odt .ods .odp .rtf .epub .png .jpg .jpeg .gif .webp .bmp .tiff .ico"
    " .svgz .mp3 .wav .ogg .flac .mp4 .mov .avi .mkv .webm .zip .gz .tgz .bz2 .xz .7z .rar .tar .exe"
    " .dll .so .dylib .bin .o .a .class .jar .pyc .whl .iso .dmg .sqlite .db .parquet .npy .pkl".split()
)
# Magic numbers of common binary formats: a file that starts like this is never treated as text.
BINARY_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"RIFF", "RIFF media"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ", "xz archive"),
    (b"7z\xbc\xaf", "7z archive"),
    (b"Rar!", "RAR archive"),
    (b"\x7fELF", "ELF executable"),
    (b"MZ", "Windows executable"),
    (b"\xca\xfe\xba\xbe", "Mach-O/class"),
    (b"\xd0\xcf\x11\xe0", "legacy Office document"),
    (b"SQLite format 3", "SQLite database"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
    (b"fLaC", "FLAC audio"),
)
HTML_DROP_TAGS = ("script", "style", "noscript", "template", "svg", "iframe", "object", "head")
HTML_BLOCK_TAGS = frozenset(
    "p div br li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer nav aside main pre"
    " blockquote dt dd dl figure figcaption hr form fieldset address details summary title".split()
)


_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f]")


def max_file_bytes() -> int:
    return int(settings.FILE_SEARCH_MAX_FILE_BYTES)


def max_unpacked_bytes() -> int:
    # A DOCX is a zip: bound what decompression may produce (zip bombs) independently of its size.
    return int(settings.FILE_SEARCH_MAX_UNPACKED_BYTES)


def extract_text(data: bytes, filename: str) -> Extracted:
    """Extract text from `data`; raise ExtractionError for anything that cannot be indexed."""
    if len(data) == 0:
        raise ExtractionError("invalid_file", "The file is empty.")
    if len(data) > max_file_bytes():
        raise ExtractionError(
            "invalid_file", f"The file is too large ({len(data)} bytes; the limit is {max_file_bytes()})."
        )
    ext = _extension(filename)
    if ext in UNSUPPORTED_EXTENSIONS:
        raise ExtractionError("unsupported_file", f"Files of type {ext} are not supported for file search.")

    is_pdf = data[:1024].lstrip().startswith(b"%PDF-")
    is_zip = data.startswith(b"PK\x03\x04")
    if ext == ".pdf" or (is_pdf and ext not in TEXT_KINDS):
        if not is_pdf:
            raise ExtractionError("invalid_file", "The file has a .pdf extension but is not a PDF.")
        return _finish(_pdf_text(data), "pdf")
    if ext == ".docx" or (is_zip and not ext):
        if not is_zip:
            raise ExtractionError(
                "invalid_file", "The file has a .docx extension but is not a DOCX document."
            )
        return _finish(_docx_text(data), "docx")

    text = _decode_text(data, declared_text=ext in TEXT_KINDS or ext in CODE_EXTENSIONS)
    kind = TEXT_KINDS.get(ext) or ("code" if ext in CODE_EXTENSIONS else _sniff_text_kind(text))
    if kind == "html":
        return _finish(_html_text(text), "html")
    if kind == "json":
        return _finish(_json_text(text), "json")
    if kind == "jsonl":
        return _finish(_jsonl_text(text), "json")
    if kind == "csv":
        return _finish(_csv_text(text, tab=ext == ".tsv"), "csv")
    return _finish(text, kind)


def _extension(filename: str) -> str:
    name = PurePosixPath(filename.replace("\\", "/")).name.lower()
    if name in {"dockerfile", "makefile"}:
        return "." + name
    return PurePosixPath(name).suffix


def _finish(text: str, kind: str) -> Extracted:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    # Lone surrogates (seen in PDF text extraction) cannot be encoded to UTF-8 or tokenized.
    text = text.encode("utf-8", "replace").decode("utf-8")
    if not text.strip():
        raise ExtractionError("invalid_file", "No text could be extracted from the file.")
    return Extracted(text=text, kind=kind)


def _decode_text(data: bytes, *, declared_text: bool) -> str:
    for magic, what in BINARY_MAGIC:
        if data.startswith(magic):
            code: ErrorCode = "invalid_file" if declared_text else "unsupported_file"
            raise ExtractionError(code, f"The file content is a {what}, not text.")
    if data.startswith(b"PK\x03\x04"):
        code = "invalid_file" if declared_text else "unsupported_file"
        raise ExtractionError(code, "The file content is a zip archive, not text.")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16").lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise ExtractionError("invalid_file", "The file is not valid UTF-16 text.") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Legacy 8-bit text (Windows-1252 / Latin-1) still indexes fine; real binaries fail the
        # control-character check below.
        text = data.decode("cp1252", errors="replace")
    sample = text[:65536]
    controls = len(_CONTROL_CHARS.findall(sample))
    if "\x00" in sample or controls > max(8, len(sample) // 100):
        code = "invalid_file" if declared_text else "unsupported_file"
        raise ExtractionError(code, "The file looks binary, not text.")
    return text


def _sniff_text_kind(text: str) -> str:
    head = text[:2048].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")) or ("<body" in head and "</" in head):
        return "html"
    if head[:1] in {"{", "["}:
        try:
            json.loads(text)
            return "json"
        except ValueError:
            pass
    return "text"


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ExtractionError("invalid_file", "The PDF is encrypted.")
        # Pages separated by a blank line keep paragraphs of different pages apart.
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except ExtractionError:
        raise
    except RecursionError as exc:
        raise ExtractionError("invalid_file", "The PDF structure is too deeply nested.") from exc
    except MemoryError:
        raise  # not the file's fault alone: let the worker retry / fail it as server_error
    except PyPdfError as exc:
        raise ExtractionError("invalid_file", f"The PDF could not be read: {exc}") from exc
    except Exception as exc:
        # A malformed PDF surfaces as almost any exception type from deep inside the parser
        # (KeyError, struct.error, ZeroDivisionError, ...): it is still a bad file, not a retry.
        raise ExtractionError(
            "invalid_file", f"The PDF could not be read: {type(exc).__name__}: {exc}"
        ) from exc


def _docx_text(data: bytes) -> str:
    from docx import Document
    from docx.table import Table

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            if "word/document.xml" not in names:
                raise ExtractionError("unsupported_file", "The zip archive is not a DOCX document.")
            if sum(info.file_size for info in zf.infolist()) > max_unpacked_bytes():
                raise ExtractionError("invalid_file", "The DOCX document expands to too much data.")
        doc = Document(io.BytesIO(data))
        parts: list[str] = []
        # Body order keeps tables next to the paragraphs that introduce them.
        for block in doc.iter_inner_content():
            if isinstance(block, Table):
                for row in block.rows:
                    cells = [cell.text.strip() for cell in row.cells]
                    parts.append(" | ".join(cells))
            else:
                parts.append(block.text)
        return "\n".join(parts)
    except ExtractionError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, AttributeError) as exc:
        raise ExtractionError("invalid_file", f"The DOCX document could not be read: {exc}") from exc
    except Exception as exc:  # lxml's XMLSyntaxError and python-docx's own errors have no common base
        raise ExtractionError("invalid_file", f"The DOCX document could not be read: {exc}") from exc


def _html_text(text: str) -> str:
    import lxml.html
    from lxml import etree

    try:
        # Bytes + explicit encoding: lxml refuses str input that carries an encoding declaration.
        parser = lxml.html.HTMLParser(encoding="utf-8")
        root = lxml.html.document_fromstring(text.encode("utf-8"), parser=parser)
    except (etree.ParserError, ValueError) as exc:
        raise ExtractionError("invalid_file", f"The HTML could not be parsed: {exc}") from exc
    title = root.findtext(".//title") or ""
    for el in list(root.iter(*HTML_DROP_TAGS, etree.Comment, etree.ProcessingInstruction)):
        el.drop_tree()
    # Block elements become line breaks so that words of adjacent paragraphs don't fuse.
    for el in root.iter(*HTML_BLOCK_TAGS):
        el.text = "\n" + (el.text or "")
        el.tail = "\n" + (el.tail or "")
    body = root.text_content()
    lines = [" ".join(line.split()) for line in body.split("\n")]
    out = "\n".join(line for line in lines if line)
    title = " ".join(title.split())
    return f"{title}\n\n{out}" if title and not out.startswith(title) else out


def _json_text(text: str) -> str:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ExtractionError("invalid_file", f"The JSON is malformed: {exc}") from exc
    return json.dumps(value, indent=2, ensure_ascii=False)


def _jsonl_text(text: str) -> str:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.dumps(json.loads(line), ensure_ascii=False))
            except ValueError as exc:
                raise ExtractionError(
                    "invalid_file", f"Line {n} of the JSON Lines file is malformed: {exc}"
                ) from exc
    return "\n".join(out)


def _csv_text(text: str, *, tab: bool) -> str:
    # Every row repeats its column names ("name: Ada | year: 1843") so that a chunk from the middle
    # of a large table still says what its values mean, both to the ranker and to the model.
    sample = text[:16384]
    delimiter = "\t" if tab else ","
    if not tab:
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
        except csv.Error:
            pass
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as exc:
        raise ExtractionError("invalid_file", f"The CSV could not be parsed: {exc}") from exc
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if not rows:
        return ""
    header = [h.strip() for h in rows[0]]
    lines = [" | ".join(header)]
    for row in rows[1:]:
        cells = []
        for i, cell in enumerate(row):
            name = header[i] if i < len(header) and header[i] else f"column {i + 1}"
            cells.append(f"{name}: {cell.strip()}")
        lines.append(" | ".join(cells))
    return "\n".join(lines)
