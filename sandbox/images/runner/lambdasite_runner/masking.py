"""Masking at the source: a job's secret values never leave the cell in its output or its error.

Every bound value of four characters or more is replaced with ``***`` in stdout and stderr and in
the result frame (the error's message and traceback travel in it), in the forms a program prints
by accident: the value itself, its base64 (standard and URL-safe, padded or not), URL-encoded and
JSON-escaped forms, and each line of a value of several lines (a PEM key printed whole). Output is
masked per line after the line is assembled, so a value written in two pieces is still found; a
line longer than HOLD bytes is masked and sent in pieces, keeping back enough of its end to find
a value that spans two pieces. Masking is a guard against accidents, not a boundary: code that
wants to print a secret can always transform it first.

Like the relay buffer, every buffer here is allocated once per job and zeroed after it, so no
output of one job stays in memory a later job's process could be forked with."""

import base64
import json
import re
from urllib.parse import quote, quote_plus

HOLD = 16384  # bytes of a line without newline held back before it is sent in pieces
CHUNK = 65536
MIN_LENGTH = 4
STAR = b"***"
_STREAMS = (b"1", b"2")


def forms(values):
    """The byte strings to mask for ``values`` (longest first, none shorter than MIN_LENGTH)."""
    found = set()
    for value in values:
        if len(value) < MIN_LENGTH:
            continue
        raw = value.encode("utf-8", "surrogatepass")
        found.add(raw)
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = encode(raw)
            found.add(encoded)
            found.add(encoded.rstrip(b"="))
        found.add(quote(value, safe="").encode())
        found.add(quote_plus(value, safe="").encode())
        found.add(json.dumps(value)[1:-1].encode())
        found.add(json.dumps(value, ensure_ascii=False)[1:-1].encode("utf-8", "surrogatepass"))
        for line in value.splitlines():
            line = line.strip()
            if len(line) >= MIN_LENGTH:
                found.add(line.encode("utf-8", "surrogatepass"))
    return sorted((f for f in found if len(f) >= MIN_LENGTH), key=len, reverse=True)


class Masker:
    """One job's masking: ``feed`` stdout/stderr bytes, ``flush`` at the end, ``mask`` a frame."""

    def __init__(self, values):
        found = forms(values)
        self.pattern = re.compile(b"|".join(re.escape(f) for f in found)) if found else None
        self.keep = max(len(f) for f in found) - 1 if found else 0
        self.count = 0
        if not found:
            return  # nothing to mask: no buffers (the runner drops an inactive masker)
        size = HOLD + CHUNK + self.keep  # what is held (at most HOLD, or keep) and one more read
        self._held = {kind: [bytearray(size), bytearray(size)] for kind in _STREAMS}
        self._used = {kind: 0 for kind in _STREAMS}
        self._out = bytearray(size)
        self._frame = bytearray(0)

    @property
    def active(self):
        return self.pattern is not None

    def _mask_into(self, dst, src):
        """Write ``src`` masked into ``dst``; -> a view of what was written (never longer than src)."""
        written = pos = 0
        for match in self.pattern.finditer(src):
            start, end = match.span()
            dst[written : written + start - pos] = src[pos:start]
            written += start - pos
            dst[written : written + len(STAR)] = STAR
            written += len(STAR)
            pos = end
            self.count += 1
        dst[written : written + len(src) - pos] = src[pos:]
        written += len(src) - pos
        return memoryview(dst)[:written]

    def feed(self, kind, chunk):
        """Output bytes of stream ``kind`` -> the masked bytes ready to send (a view, valid until the
        next call): every complete line, or the start of a long one."""
        held, spare = self._held[kind]
        used = self._used[kind]
        held[used : used + len(chunk)] = chunk
        used += len(chunk)
        view = memoryview(held)
        end = held.rfind(b"\n", 0, used) + 1
        if used - end <= HOLD:  # complete lines go, the line being written waits for its end
            masked = self._mask_into(self._out, view[:end])
            rest = view[end:used]
        else:  # a long line: masked whole and sent, but for its last ``keep`` bytes
            masked = self._mask_into(self._out, view[:used])
            cut = max(0, len(masked) - self.keep)
            masked, rest = masked[:cut], masked[cut:]
        spare[: len(rest)] = rest
        self._held[kind] = [spare, held]
        self._used[kind] = len(rest)
        return masked

    def flush(self, kind):
        """What stream ``kind`` still holds, masked (at its end)."""
        held = self._held[kind][0]
        used, self._used[kind] = self._used[kind], 0
        return self._mask_into(self._out, memoryview(held)[:used])

    def mask(self, data):
        """A whole frame (the result, an initialisation report), masked -> a view."""
        if len(self._frame) < len(data):
            self._zero(self._frame)
            self._frame = bytearray(len(data))
        return self._mask_into(self._frame, data)

    def reset(self):
        """Zero every buffer: nothing of this job's output stays in memory."""
        for pair in self._held.values():
            for buf in pair:
                self._zero(buf)
        self._zero(self._out)
        self._zero(self._frame)
        self._used = {kind: 0 for kind in _STREAMS}

    @staticmethod
    def _zero(buf):
        memoryview(buf)[:] = bytes(len(buf))
