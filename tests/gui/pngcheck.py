"""PNG helpers for the GUI tests (no third-party modules): decoded pixels and the text chunks."""
import struct
import zlib


def chunks(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos = 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + n]
        pos += 12 + n


def pixels(path):
    """(width, height, channels, raw pixel bytes) of an 8-bit PNG, filters undone (equal images compare equal)."""
    idat, w = b"", None
    for kind, body in chunks(path):
        if kind == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8, f"{path}: {depth}-bit"
            channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride, out, prev = w * channels, bytearray(), bytearray(w * channels)
    for y in range(h):
        f, row = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = row[i - channels] if i >= channels else 0
            b, c = prev[i], (prev[i - channels] if i >= channels else 0)
            if f == 1: row[i] = (row[i] + a) & 255
            elif f == 2: row[i] = (row[i] + b) & 255
            elif f == 3: row[i] = (row[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += row
        prev = row
    return w, h, channels, bytes(out)


def text(path):
    """{keyword: value} of the tEXt, zTXt and iTXt chunks."""
    out = {}
    for kind, body in chunks(path):
        if kind == b"tEXt":
            k, v = body.split(b"\0", 1)
            out[k.decode("latin-1")] = v.decode("latin-1")
        elif kind == b"zTXt":
            k, rest = body.split(b"\0", 1)
            out[k.decode("latin-1")] = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            k, rest = body.split(b"\0", 1)
            compressed = rest[0]
            rest = rest[2:]
            _lang, rest = rest.split(b"\0", 1)
            _tkey, v = rest.split(b"\0", 1)
            out[k.decode("utf-8")] = (zlib.decompress(v) if compressed else v).decode("utf-8")
    return out


def idat(path):
    """The PNG's compressed image data (its IDAT chunks): equal for the same picture written the same way, whatever
    its text chunks say."""
    return b"".join(body for kind, body in chunks(path) if kind == b"IDAT")
