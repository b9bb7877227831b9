#!/usr/bin/env python3
"""Seeded hostile-input driver for sprint-generate.

Builds malformed inputs -- model folders, --sketch / --image PNGs, --from PNGs with bad settings chunks, and bad
command-line arguments -- runs sprint-generate once per case under a wall-clock timeout and a memory limit, and
sorts each outcome:

  ok           exit 0 and a valid PNG at --out that is not one single colour (and of the asked size, if known)
  clean error  exit != 0, one message without a backtrace, naming the file, key or flag at fault (a bounded list of
               indented lines under it, like the loader's "N problems binding the checkpoint", is accepted)
  silent       exit 0 on an input that must be refused; exit 0 with a missing, invalid, one-colour or wrong-size
               picture; or an existing --out target that is a FIFO, symlink or directory was replaced or written
               through (checked whatever the exit status)
  noisy error  exit != 0 with a backtrace, unrelated extra lines, no message, or a message naming nothing relevant
  crash        killed by a signal
  hang         past --timeout, or asleep without using any CPU for --idle-timeout seconds (e.g. blocked on a FIFO)
  memory       past the address-space limit (bad_alloc, failed allocation) or the resident-memory limit
  refused      an error on an input that must work (the "valid" class and the valid variants of the others)

Every case declares whether its input must be refused, must work, or may do either; crash, hang, memory, silent,
noisy error and refused are failures, and the exit status is 1 when there is any.

Input classes: valid (normal runs, to show the harness accepts success), cli (flags: --size, --steps, --guidance,
--seed, --threads, --timesteps, --control-scale, --out targets, unknown flags, ...), model (mutated copies of the
model folder: config.json keys and files, safetensors headers and tensors, tokenizer, sprint_pipeline.json,
scheduler/, model_index.json), image (--sketch / --image PNGs) and from (--from PNGs with hostile sprint:* chunks).

Everything is generated from --seed: case i's inputs depend only on (--seed, --cases, i), so the same seed and binary
give the same cases, and one case can be re-run alone with --case i.

Run standalone from the repository root (Python >= 3.9, standard library only; PIL is used when present):

  python3 tests/fuzz/hostile_cli.py --exe build/bin/sprint-generate \\
      --model tests/fixtures/pipeline/tiny_pipeline --work /tmp/hostile

Longer or different runs: --cases 2000 (default 300: about 5 minutes on a 2-core machine; the class shares are
fixed), --seed 7, --only model,cli. Re-run one case and keep its inputs: the same --seed and --cases plus --case 57
--keep. Output: one table of input class x outcome, then the failures (the first 5 per class and outcome; all with
--list-failures), each with its case id, command and stderr tail. -v prints one line per case as it runs. The input
folders of failing cases are kept under --work (for the repro commands); passing ones are removed unless --keep.

sprint-generate runs with --device cpu --threads 1 unless a case says otherwise, CUDA hidden, niceness >= 10, and
RLIMIT_AS = --as-limit-gib (LibTorch with its CUDA libraries needs about 3 GiB of address space just to start).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import resource
import shlex
import shutil
import signal
import stat
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

# ------------------------------------------------------------------------------------------------------------------
# Outcomes

OK, CLEAN, SILENT, NOISY, CRASH, HANG, MEMORY, REFUSED = (
    "ok", "clean error", "silent", "noisy error", "crash", "hang", "memory", "refused")
OUTCOMES = [OK, CLEAN, SILENT, NOISY, CRASH, HANG, MEMORY, REFUSED]
FAILURES = {SILENT, NOISY, CRASH, HANG, MEMORY, REFUSED}
CLASSES = ["valid", "cli", "model", "image", "from"]
CLASS_SHARE = {"valid": 0.12, "cli": 0.34, "model": 0.28, "image": 0.13, "from": 0.13}

BACKTRACE_MARKS = ("Exception raised from", "frame #", "terminate called", "what():", "Traceback (most recent",
                   "stack trace", "Segmentation fault", "core dumped", "[enforce fail at")
MEMORY_MARKS = ("bad_alloc", "can't allocate memory", "cannot allocate memory", "out of memory",
                "failed to map segment", "Thread creation failed", "std::length_error")
CLI11_TRAILER = "Run with --help for more information."

FLAG = object()  # an option given without a value (e.g. --no-binning)


# ------------------------------------------------------------------------------------------------------------------
# PNG writing (any colour type / bit depth / interlace, text chunks) and reading (the 8-bit pictures we check)

PNG_SIG = b"\x89PNG\r\n\x1a\n"
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png_chunk(kind: bytes, data: bytes, crc: Optional[int] = None) -> bytes:
    if crc is None:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def ihdr_chunk(w: int, h: int, depth: int = 8, ctype: int = 2, interlace: int = 0, compression: int = 0,
               filt: int = 0) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, compression, filt, interlace))


def pack_samples(samples: Sequence[int], depth: int) -> bytes:
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return struct.pack(">%dH" % len(samples), *samples)
    per, out = 8 // depth, bytearray()
    for i in range(0, len(samples), per):
        byte = 0
        for j, s in enumerate(samples[i:i + per]):
            byte |= s << (8 - depth * (j + 1))
        out.append(byte)
    return bytes(out)


def raw_scanlines(pixels: List[List[Tuple[int, ...]]], w: int, h: int, depth: int, interlace: bool) -> bytes:
    """Filter type 0 scanlines; Adam7 passes when interlaced."""
    out = bytearray()
    if not interlace:
        for y in range(h):
            out += b"\0" + pack_samples([s for p in pixels[y] for s in p], depth)
        return bytes(out)
    for x0, y0, dx, dy in ADAM7:
        xs = range(x0, w, dx)
        if len(xs) == 0:
            continue
        for y in range(y0, h, dy):
            out += b"\0" + pack_samples([s for x in xs for s in pixels[y][x]], depth)
    return bytes(out)


def text_chunk(key: str, value, kind: str = "iTXt") -> bytes:
    """A tEXt, zTXt or iTXt (kind "iTXt-z": compressed) chunk; value may be bytes (written as is)."""
    k = key.encode("latin-1", "replace")
    if kind in ("tEXt", "zTXt"):
        v = value if isinstance(value, bytes) else value.encode("latin-1", "replace")
        if kind == "tEXt":
            return png_chunk(b"tEXt", k + b"\0" + v)
        return png_chunk(b"zTXt", k + b"\0\0" + zlib.compress(v))
    v = value if isinstance(value, bytes) else value.encode("utf-8", "surrogateescape")
    if kind == "iTXt-z":
        return png_chunk(b"iTXt", k + b"\0\1\0\0\0" + zlib.compress(v))
    return png_chunk(b"iTXt", k + b"\0\0\0\0\0" + v)


def encode_png(pixels, w: int, h: int, depth: int = 8, ctype: int = 2, interlace: bool = False,
               plte: Optional[bytes] = None, trns: Optional[bytes] = None, chunks: Sequence[bytes] = (),
               raw: Optional[bytes] = None) -> bytes:
    data = raw if raw is not None else raw_scanlines(pixels, w, h, depth, interlace)
    out = PNG_SIG + ihdr_chunk(w, h, depth, ctype, 1 if interlace else 0)
    if plte is not None:
        out += png_chunk(b"PLTE", plte)
    if trns is not None:
        out += png_chunk(b"tRNS", trns)
    for c in chunks:
        out += c
    return out + png_chunk(b"IDAT", zlib.compress(data, 6)) + png_chunk(b"IEND", b"")


def png_chunks(data: bytes) -> List[Tuple[bytes, bytes, int]]:
    """(type, payload, offset of the chunk) of every chunk; raises ValueError on a malformed file."""
    if data[:8] != PNG_SIG:
        raise ValueError("no PNG signature")
    out, pos = [], 8
    while pos < len(data):
        if pos + 12 > len(data):
            raise ValueError("truncated chunk at byte %d" % pos)
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if pos + 12 + n > len(data):
            raise ValueError("chunk %r runs past the end" % kind)
        payload = data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        if crc != zlib.crc32(kind + payload) & 0xFFFFFFFF:
            raise ValueError("bad CRC in chunk %r" % kind)
        out.append((kind, payload, pos))
        pos += 12 + n
        if kind == b"IEND":
            break
    return out


def decode_png(data: bytes) -> Tuple[int, int, int, Optional[bytes]]:
    """(width, height, channels, pixels) of a non-interlaced 8-bit gray/RGB/gray-alpha/RGBA PNG (the kind
    sprint-generate writes); pixels is None past 1 Mpixel (pure Python is too slow there). Raises ValueError."""
    chunks = png_chunks(data)
    if not chunks or chunks[0][0] != b"IHDR" or chunks[-1][0] != b"IEND":
        raise ValueError("no IHDR first or no IEND last")
    w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or ctype not in (0, 2, 4, 6) or interlace:
        raise ValueError("unexpected format: depth %d, colour type %d, interlace %d" % (depth, ctype, interlace))
    if w == 0 or h == 0 or w * h > 8192 * 8192:
        raise ValueError("unexpected size %dx%d" % (w, h))
    raw = zlib.decompress(b"".join(p for k, p, _ in chunks if k == b"IDAT"))
    bpp = CHANNELS[ctype]
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise ValueError("image data holds %d bytes, expected %d" % (len(raw), h * (stride + 1)))
    if w * h > 1 << 20:
        return w, h, bpp, None
    out, prev = bytearray(), bytearray(stride)
    for y in range(h):
        ft, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if ft == 2:
            line = bytearray((x + b) & 255 for x, b in zip(line, prev))
        elif ft != 0:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                if ft == 1:
                    line[i] = (line[i] + a) & 255
                elif ft == 3:
                    line[i] = (line[i] + (a + b) // 2) & 255
                elif ft == 4:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
                else:
                    raise ValueError("bad filter type %d" % ft)
        out += line
        prev = line
    return w, h, bpp, bytes(out)


def is_one_colour(data: bytes, w: int, h: int, c: int, pixels: Optional[bytes]) -> Optional[bool]:
    """Whether every pixel is the same; None when it cannot be told (a big picture and no PIL)."""
    try:
        import io
        from PIL import Image  # faster; optional
        img = Image.open(io.BytesIO(data))
        img.load()
        ext = img.getextrema()
        return all(lo == hi for lo, hi in (ext if isinstance(ext[0], tuple) else [ext]))
    except ImportError:
        pass
    if pixels is None:
        return None
    return pixels == pixels[:c] * (w * h)


def write_blank_png_streamed(path: Path, w: int, h: int) -> None:
    """A white w x h 8-bit gray PNG written row by row (a 20000 x 20000 one is ~400 KB on disk, 400 MB decoded)."""
    comp, row = zlib.compressobj(9), b"\0" + b"\xff" * w
    parts = [comp.compress(row) for _ in range(h)]
    parts.append(comp.flush())
    idat = b"".join(parts)
    path.write_bytes(PNG_SIG + ihdr_chunk(w, h, 8, 0) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


# ---- pictures -----------------------------------------------------------------------------------------------------

WORDS = ("red fox blue bird green tree yellow sun small house smiling face cat dog boat mountain river star moon "
         "happy sad rocket pizza flower heart").split()


def random_prompt(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6)))


def sketch_mask(rng: random.Random, w: int, h: int) -> List[List[bool]]:
    """A few dark 2 px lines on a light canvas."""
    m = [[False] * w for _ in range(h)]
    for _ in range(rng.randint(2, 4)):
        x0, y0, x1, y1 = rng.randrange(w), rng.randrange(h), rng.randrange(w), rng.randrange(h)
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            x, y = x0 + (x1 - x0) * i // n, y0 + (y1 - y0) * i // n
            m[y][x] = True
            if x + 1 < w:
                m[y][x + 1] = True
    return m


# name -> (bit depth, colour type, sample function(dark) -> pixel tuple, PLTE, tRNS)
SKETCH_FORMATS = {
    "rgb8": (8, 2, lambda d: (0, 0, 0) if d else (255, 255, 255), None, None),
    "rgba8": (8, 6, lambda d: (0, 0, 0, 255) if d else (255, 255, 255, 255), None, None),
    "gray8": (8, 0, lambda d: (0,) if d else (255,), None, None),
    "gray1": (1, 0, lambda d: (0,) if d else (1,), None, None),
    "gray4": (4, 0, lambda d: (0,) if d else (15,), None, None),
    "gray16": (16, 0, lambda d: (0,) if d else (65535,), None, None),
    "rgb16": (16, 2, lambda d: (0, 0, 0) if d else (65535, 65535, 65535), None, None),
    "graya8": (8, 4, lambda d: (0, 255) if d else (255, 255), None, None),
    "palette": (8, 3, lambda d: (1,) if d else (0,), b"\xff\xff\xff\x00\x00\x00", None),
    "palette2_trns": (2, 3, lambda d: (1,) if d else (0,), b"\xff\xff\xff\x00\x00\x00", b"\xff\xff"),
}


def sketch_png(rng: random.Random, w: int, h: int, fmt: str = "rgb8", interlace: bool = False,
               chunks: Sequence[bytes] = ()) -> bytes:
    depth, ctype, px, plte, trns = SKETCH_FORMATS[fmt]
    mask = sketch_mask(rng, w, h)
    pixels = [[px(mask[y][x]) for x in range(w)] for y in range(h)]
    return encode_png(pixels, w, h, depth, ctype, interlace, plte, trns, chunks)


def photo_png(rng: random.Random, w: int, h: int, chunks: Sequence[bytes] = ()) -> bytes:
    """A colourful picture: gradients and a few discs."""
    discs = [(rng.randrange(w), rng.randrange(h), rng.randint(2, max(3, w // 3)),
              (rng.randrange(256), rng.randrange(256), rng.randrange(256))) for _ in range(3)]
    pixels = []
    for y in range(h):
        row = []
        for x in range(w):
            p = (x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), 128)
            for cx, cy, r, col in discs:
                if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
                    p = col
            row.append(p)
        pixels.append(row)
    return encode_png(pixels, w, h, 8, 2, False, None, None, chunks)


# ------------------------------------------------------------------------------------------------------------------
# safetensors and JSON helpers

def st_load(path: Path) -> Tuple[dict, bytes]:
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_save(path: Path, header: dict, data: bytes) -> None:
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    path.write_bytes(struct.pack("<Q", len(hb)) + hb + data)


def st_tensors(header: dict) -> List[str]:
    return [k for k in header if k != "__metadata__"]


def json_with_raw(obj, raw: Dict[str, str]) -> str:
    """json.dumps(obj) with each string value "@RAW:<name>" replaced by raw[name] verbatim (e.g. 1e400, NaN)."""
    text = json.dumps(obj, indent=2)
    for name, r in raw.items():
        text = text.replace('"@RAW:%s"' % name, r)
    return text


# ------------------------------------------------------------------------------------------------------------------
# Cases

@dataclasses.dataclass
class Case:
    index: int
    cls: str
    family: str
    desc: str = ""
    opts: Dict[str, object] = dataclasses.field(default_factory=dict)  # flag -> value; None drops a default
    extra: List[object] = dataclasses.field(default_factory=list)      # raw arguments after the options
    expect: str = "any"        # "ok": must work, "fail": must be refused, "any": either (but cleanly)
    names: Sequence[str] = ()  # the error message must contain one of these (case-insensitive)
    size: Optional[Tuple[int, int]] = None  # the picture's (width, height) when it works
    heavy: bool = False        # longer timeout
    checks: List[Callable[[], Optional[str]]] = dataclasses.field(default_factory=list)  # -> problem or None


@dataclasses.dataclass
class Family:
    cls: str
    name: str
    build: Callable  # (ctx, rng, d, case) -> None: fills the case, writes its files under d
    limit: Optional[int] = None  # at most this many cases per run (slow or blocking inputs)
    heavy: bool = False


FAMILIES: List[Family] = []


def family(cls: str, limit: Optional[int] = None, heavy: bool = False):
    def deco(fn):
        FAMILIES.append(Family(cls, fn.__name__, fn, limit, heavy))
        return fn
    return deco


class Ctx:
    def __init__(self, model: Path, repo: Optional[Path]):
        self.model = model
        self.repo = repo


def copy_model(ctx: Ctx, d: Path) -> Path:
    m = d / "model"
    shutil.copytree(ctx.model, m, symlinks=False)
    return m


def with_sketch(rng: random.Random, d: Path, case: Case, size: int = 32) -> Path:
    p = d / "sketch.png"
    p.write_bytes(sketch_png(rng, size, size))
    case.opts["--sketch"] = str(p)
    return p


def parse_wxh(s: str) -> Optional[Tuple[int, int]]:
    try:
        w, h = s.split("x")
        if w.isdigit() and h.isdigit() and int(w) > 0 and int(h) > 0:
            return int(w), int(h)
    except ValueError:
        pass
    return None


# ------------------------------------------------------------------------------------------------------------------
# Class "valid": normal runs that must work

@family("valid")
def valid_text(ctx, rng, d, case):
    size = rng.choice([None, "32x32", "64x64", "64x32", "32x64", "96x96", "128x64"])
    case.opts.update({"--steps": str(rng.randint(1, 4)), "--guidance": "%.2f" % rng.uniform(0, 8)})
    if size:
        case.opts["--size"] = size
        case.size = parse_wxh(size)
        if rng.random() < 0.3:
            case.opts["--no-binning"] = FLAG
    case.expect, case.desc = "ok", "size %s" % (size or "native")


@family("valid")
def valid_sketch(ctx, rng, d, case):
    fmt = rng.choice(list(SKETCH_FORMATS))
    p = d / "sketch.png"
    p.write_bytes(sketch_png(rng, 32, 32, fmt, interlace=rng.random() < 0.2))
    case.opts.update({"--sketch": str(p), "--control-scale": "%.2f" % rng.uniform(0, 1.5),
                      "--thickness": str(rng.randint(0, 4))})
    case.expect, case.desc = "ok", "32x32 %s sketch" % fmt


@family("valid")
def valid_image(ctx, rng, d, case):
    p = d / "photo.png"
    p.write_bytes(photo_png(rng, 64, 64))
    case.opts.update({"--image": str(p), "--size": "64x64"})
    case.expect, case.desc, case.size = "ok", "64x64 photo, --size 64x64", (64, 64)


def sprint_chunks(ctx: Ctx, rng: random.Random, model: Optional[Path] = None) -> Dict[str, object]:
    """The text chunks sprint-generate writes, with valid values."""
    m = str(model or ctx.model)
    return {"sprint:model_path": m, "sprint:model": Path(m).name, "sprint:prompt": random_prompt(rng),
            "sprint:seed": str(rng.randrange(10 ** 6)), "sprint:steps": str(rng.randint(1, 4)),
            "sprint:guidance": "%g" % rng.choice([0.0, 1.5, 4.5, 7.0]), "sprint:size": "32x32",
            "Software": "Sprint Studio sprint-generate"}


def from_png(rng: random.Random, path: Path, text: Dict[str, object], kind: Optional[str] = None) -> None:
    kinds = ["iTXt", "tEXt", "zTXt", "iTXt-z"]
    chunks = [text_chunk(k, v, kind or rng.choice(kinds)) for k, v in text.items()]
    path.write_bytes(photo_png(rng, 32, 32, chunks))


def from_case(case: Case, path: Path) -> None:
    case.opts.update({"--model": None, "--prompt": None, "--seed": None, "--from": str(path)})


@family("valid")
def valid_from(ctx, rng, d, case):
    p = d / "earlier.png"
    from_png(rng, p, sprint_chunks(ctx, rng))
    from_case(case, p)
    if rng.random() < 0.5:
        case.opts["--seed"] = str(rng.randrange(1000))
    case.expect, case.desc, case.size = "ok", "--from a valid PNG", (32, 32)


@family("valid")
def valid_timesteps(ctx, rng, d, case):
    mid = "%.3f" % rng.uniform(0.2, 1.5)
    case.opts.update({"--steps": "2", "--timesteps": "1.5708,%s,0" % mid})
    case.expect, case.desc = "ok", "--timesteps 1.5708,%s,0" % mid


@family("valid")
def valid_overwrite(ctx, rng, d, case):
    out = d / "existing.png"
    out.write_bytes(b"old content")
    case.opts["--out"] = str(out)
    case.expect, case.desc = "ok", "--out over an existing regular file"


# ------------------------------------------------------------------------------------------------------------------
# Class "cli": command-line arguments

@family("cli")
def cli_size(ctx, rng, d, case):
    value, expect = rng.choice([
        ("100000x100000", "fail"), ("0x0", "fail"), ("-64x64", "fail"), ("64x", "fail"), ("x64", "fail"),
        ("64x64x64", "fail"), ("1e3x1e3", "fail"), ("2147483647x2147483647", "fail"), ("4294967360x64", "fail"),
        ("64*64", "fail"), ("", "fail"), ("64x-64", "fail"), ("0x64", "fail"), ("99999999999999999999x64", "fail"),
        ("6.4e1x64", "fail"), ("32x100000", "fail"), ("63x64", "any"), ("64x64 ", "any"), (" 64x64", "any"),
        ("64X64", "any"), ("33x33", "any"), ("1x1", "any"), ("31x32", "any"), ("+64x+64", "any"), ("2049x32", "any"),
        ("0064x0064", "any")])
    case.opts["--size"] = value
    case.expect, case.names, case.desc = expect, ["size"], "--size %r" % value
    case.size = parse_wxh(value.strip().lower()) if expect == "any" else None


@family("cli", limit=1, heavy=True)
def cli_size_huge(ctx, rng, d, case):
    case.opts["--size"] = "4096x4096"
    case.expect, case.names, case.desc = "any", ["size"], "--size 4096x4096 (tiny model)"
    case.size = (4096, 4096)


def flag_family(flag: str, bad: Sequence[str], odd: Sequence[str], names: Sequence[str], ok: Sequence[str] = ()):
    """A family for one flag: values that must be refused, odd values that may go either way, good values."""
    def build(ctx, rng, d, case):
        value, expect = rng.choice([(v, "fail") for v in bad] + [(v, "any") for v in odd] + [(v, "ok") for v in ok])
        case.opts[flag] = value
        case.expect, case.names, case.desc = expect, names, "%s %r" % (flag, value)
    FAMILIES.append(Family("cli", "cli_" + flag.strip("-").replace("-", "_"), build))


flag_family("--steps", ["0", "5", "0.5", "-1", "abc", "", "1e0", "2.5", "99999999999", "-0", "4294967298", "2 2"],
            ["+2", "0x2", "2 ", "02"], ["--steps", "steps"], ["1", "2", "3", "4"])
flag_family("--guidance", ["nan", "NaN", "inf", "-inf", "1e400", "-1e400", "abc", "", "4.5.1"],
            ["0x10", "-1", "0", "1e308", "-1e308", "1e-320", "100"], ["--guidance", "guidance"])
flag_family("--seed", ["-1", "18446744073709551616", str(2 ** 70), "abc", "random", "", "1.5", "1e3", "--1",
                       "-18446744073709551615"],
            ["18446744073709551615", "0", "0x10", "007", " 5"], ["--seed", "seed"])
flag_family("--threads", ["-3", "abc", "1.5", "-2147483648", "99999999999", ""], ["0x2", "0", "2", "64"],
            ["--threads", "threads"])
flag_family("--device", ["bogus", "cuda:99", "mps", "-1", "cuda:-1", ""], ["cuda", "cpu:0", "CPU"], ["device"])


@family("cli", limit=1, heavy=True)
def cli_threads_many(ctx, rng, d, case):
    case.opts["--threads"] = rng.choice(["100000", "1000000"])
    case.expect, case.names = "any", ["--threads", "threads"]
    case.desc = "--threads %s" % case.opts["--threads"]


@family("cli")
def cli_control_scale(ctx, rng, d, case):
    with_sketch(rng, d, case)
    value, expect = rng.choice([("nan", "fail"), ("inf", "fail"), ("-inf", "fail"), ("1e400", "fail"),
                               ("abc", "fail"), ("1e308", "any"), ("-1", "any"), ("0", "any"), ("100", "any")])
    case.opts["--control-scale"] = value
    case.expect, case.names = expect, ["control-scale", "controlnet scale", "control_scale"]
    case.desc = "--control-scale %s with a sketch" % value


@family("cli")
def cli_thickness(ctx, rng, d, case):
    with_sketch(rng, d, case)
    value, expect = rng.choice([("25", "fail"), ("-1", "fail"), ("abc", "fail"), ("1000000000", "fail"),
                               ("0", "any"), ("24", "any")])
    case.opts["--thickness"] = value
    case.expect, case.names, case.desc = expect, ["--thickness", "thickness"], "--thickness %s with a sketch" % value


@family("cli")
def cli_timesteps(ctx, rng, d, case):
    long_list = ",".join("%.6f" % (1.5707 * (1 - i / 20000)) for i in range(20000)) + ",0"
    value, expect, steps = rng.choice([
        ("abc", "fail", None), ("1.5708,,0", "fail", None), ("nan", "fail", None), ("nan,0", "fail", None),
        ("1.5708,nan,0", "fail", "2"), ("inf,0", "fail", None), ("1e400", "fail", None), ("1.5708;0", "fail", None),
        ("-1,0", "fail", None), ("0,1.5708", "fail", None), ("1.5708,1.5708,0", "fail", None), ("5,0", "fail", None),
        (",", "fail", None), ("1.5708,1.3,0,0", "fail", None), ("1.5708,1.3,0", "fail", "4"),
        (" 1.5708, 1.3, 0", "any", "2"), ("0x1p0,0", "any", None), (long_list, "any", None), ("1.5708", "any", None)])
    case.opts["--timesteps"] = value
    if steps:
        case.opts["--steps"] = steps
    case.expect, case.names = expect, ["--timesteps", "timesteps"]
    case.desc = "--timesteps %r%s" % (value if len(value) < 30 else "<%d values>" % (value.count(",") + 1),
                                      " --steps " + steps if steps else "")


@family("cli")
def cli_unknown_flag(ctx, rng, d, case):
    args, names = rng.choice([(["--bogus"], ["--bogus"]), (["--bogus=1"], ["--bogus"]), (["-z"], ["-z"]),
                             (["--Seed", "3"], ["--Seed"]), (["positional"], ["positional"]),
                             (["--sizes", "32x32"], ["--sizes"]), (["--prompt"], ["--prompt", "prompt"]),
                             (["---seed", "1"], ["---seed", "seed"]), (["-"], ["-"])])
    if args == ["--prompt"]:
        case.opts["--prompt"] = None  # the flag itself comes last, without its value
    case.extra = args
    case.expect = "any" if args == ["-"] else "fail"  # a lone "-" may be taken as a value
    case.names, case.desc = names, "extra arguments %s" % " ".join(args)


@family("cli")
def cli_duplicate_flag(ctx, rng, d, case):
    flag, a, b = rng.choice([("--seed", "1", "2"), ("--steps", "2", "3"), ("--size", "32x32", "64x64")])
    case.opts[flag] = None
    case.extra = [flag, a, flag, b]
    case.expect, case.names, case.desc = "any", [flag], "%s given twice" % flag


@family("cli")
def cli_model(ctx, rng, d, case):
    kind = rng.choice(["missing", "file", "empty dir", "empty string", "omitted", "fifo", "subfolder", "devnull"])
    names = ["model"]
    if kind == "missing":
        value = str(d / "no-such-model")
        names = ["no-such-model"]
    elif kind == "file":
        value = str(d / "model-file")
        Path(value).write_text("{}")
        names = ["model-file"]
    elif kind == "empty dir":
        (d / "empty-model").mkdir()
        value = str(d / "empty-model")
        names = ["empty-model"]
    elif kind == "fifo":
        os.mkfifo(d / "model-fifo")
        value = str(d / "model-fifo")
        names = ["model-fifo"]
    elif kind == "subfolder":
        value = str(ctx.model / "transformer")
        names = ["transformer"]
    elif kind == "devnull":
        os.symlink("/dev/null", d / "model-link")
        value = str(d / "model-link")
        names = ["model-link"]
    else:
        value = "" if kind == "empty string" else None
    case.opts["--model"] = value
    case.expect, case.names, case.desc = "fail", names, "--model: %s" % kind


@family("cli")
def cli_prompt(ctx, rng, d, case):
    kind = rng.choice(["100 KB", "invalid UTF-8", "empty", "control characters", "whitespace", "emoji",
                       "right-to-left", "NUL-like"])
    value = {"100 KB": " ".join(rng.choice(WORDS) for _ in range(20000))[:100000],
             "invalid UTF-8": b"a red \xff\xfe fox \xc3\x28",
             "empty": "", "control characters": "a\x01\x02\x1b[31mred\x7f fox\n\ttree",
             "whitespace": "   \n\t  ", "emoji": "\U0001F98A\U0001F332 fox in a forest \u2764\ufe0f",
             "right-to-left": "\u202eoof der a", "NUL-like": "a\\0red\\x00fox"}[kind]
    case.opts["--prompt"] = value
    case.expect = "any" if kind in ("empty", "whitespace") else "ok"
    case.names, case.desc = ["prompt"], "--prompt: %s" % kind


@family("cli")
def cli_sketch_and_image(ctx, rng, d, case):
    with_sketch(rng, d, case)
    p = d / "photo.png"
    p.write_bytes(photo_png(rng, 32, 32))
    case.opts["--image"] = str(p)
    case.expect, case.names, case.desc = "fail", ["--sketch", "--image"], "--sketch and --image together"


@family("cli")
def cli_hed(ctx, rng, d, case):
    p = d / "photo.png"
    p.write_bytes(photo_png(rng, 32, 32))
    case.opts["--image"] = str(p)
    kind = rng.choice(["missing", "garbage", "empty", "directory", "transformer weights"])
    hed = d / "hed.safetensors"
    if kind == "garbage":
        hed.write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    elif kind == "empty":
        hed.write_bytes(b"")
    elif kind == "directory":
        hed.mkdir()
    elif kind == "transformer weights":
        shutil.copy(ctx.model / "transformer" / "diffusion_pytorch_model.safetensors", hed)
    case.opts["--hed"] = str(hed)
    case.expect, case.names, case.desc = "fail", ["hed"], "--hed: %s" % kind


def keep_fifo(p: Path) -> Callable[[], Optional[str]]:
    def check():
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            return "the FIFO %s was removed" % p.name
        if not stat.S_ISFIFO(st.st_mode):
            return "the FIFO %s was replaced by a %s" % (p.name, "regular file" if stat.S_ISREG(st.st_mode) else
                                                          "non-FIFO")
        return None
    return check


def keep_dir(p: Path, inside: str) -> Callable[[], Optional[str]]:
    def check():
        if not p.is_dir() or p.is_symlink():
            return "the directory %s was replaced" % p.name
        if not (p / inside).is_file():
            return "the file %s inside --out directory %s disappeared" % (inside, p.name)
        return None
    return check


def keep_symlink(link: Path, target: Path, content: bytes) -> Callable[[], Optional[str]]:
    def check():
        problems = []
        if not target.exists() or target.read_bytes() != content:
            problems.append("the symlink's target %s was overwritten through the link" % target.name)
        if not link.is_symlink():
            problems.append("the symlink %s was replaced by a %s (its target %s kept the old content)"
                            % (link.name, "regular file" if link.is_file() else "non-link", target.name))
        elif os.readlink(link) != str(target):
            problems.append("the symlink %s now points elsewhere" % link.name)
        return "; ".join(problems) or None
    return check


def no_tmp_left(d: Path) -> Callable[[], Optional[str]]:
    def check():
        left = [p.name for p in d.iterdir() if ".tmp-" in p.name]
        return "temporary file(s) left behind: %s" % ", ".join(left) if left else None
    return check


@family("cli")
def cli_out(ctx, rng, d, case):
    kind = rng.choice(["existing directory", "FIFO", "symlink to a file", "dangling symlink", ".jpg name",
                       "nonexistent folder", "read-only folder", "empty string", "trailing slash", "out is the sketch"])
    root_uid = os.geteuid() == 0
    case.expect = "fail"
    if kind == "existing directory":
        out = d / "outdir"
        out.mkdir()
        (out / "keep.txt").write_text("keep")
        case.checks.append(keep_dir(out, "keep.txt"))
        names = ["outdir"]
    elif kind == "FIFO":
        out = d / "out-fifo.png"
        os.mkfifo(out)
        case.checks.append(keep_fifo(out))
        names = ["out-fifo"]
    elif kind == "symlink to a file":
        target, out = d / "precious.png", d / "link.png"
        content = b"precious bytes %d" % rng.randrange(10 ** 6)
        target.write_bytes(content)
        os.symlink(str(target), out)
        case.checks.append(keep_symlink(out, target, content))
        case.expect, names = "any", ["link.png"]
    elif kind == "dangling symlink":
        out = d / "dangling.png"
        os.symlink(str(d / "nowhere" / "x.png"), out)
        case.expect, names = "any", ["dangling"]
        case.checks.append(lambda out=out: None if out.is_symlink() else "the dangling symlink was replaced")
    elif kind == ".jpg name":
        out = d / "out.jpg"
        case.expect, names = "any", ["jpg"]
    elif kind == "nonexistent folder":
        out = d / "nope" / "out.png"
        names = ["nope"]
    elif kind == "read-only folder":
        ro = d / "ro"
        ro.mkdir()
        out = ro / "out.png"
        os.chmod(ro, 0o555)
        case.expect = "any" if root_uid else "fail"
        names = ["ro/out.png"]
    elif kind == "empty string":
        out = ""
        names = ["--out", "''", "output"]
    elif kind == "trailing slash":
        out = str(d / "out.png") + "/"
        names = ["out.png"]
    else:  # the output path is the input sketch: must not be destroyed before it is read
        out = with_sketch(rng, d, case)
        case.expect, names = "any", ["sketch"]
    case.opts["--out"] = str(out)
    case.checks.append(no_tmp_left(d))
    case.names, case.desc = names, "--out: %s" % kind


@family("cli")
def cli_save_condition(ctx, rng, d, case):
    kind = rng.choice(["existing directory", "nonexistent folder", "FIFO", "no condition"])
    target = d / "cond.png"
    case.expect, case.names = "fail", ["cond"]
    if kind == "no condition":
        case.expect = "any"
    else:
        with_sketch(rng, d, case)
    if kind == "existing directory":
        target.mkdir()
        (target / "keep.txt").write_text("keep")
        case.checks.append(keep_dir(target, "keep.txt"))
    elif kind == "nonexistent folder":
        target = d / "nope" / "cond.png"
    elif kind == "FIFO":
        os.mkfifo(target)
        case.checks.append(keep_fifo(target))
    case.opts["--save-condition"] = str(target)
    case.desc = "--save-condition: %s" % kind


# ------------------------------------------------------------------------------------------------------------------
# Class "model": mutated copies of the model folder

COMPONENTS = {"transformer": "diffusion_pytorch_model.safetensors", "vae": "diffusion_pytorch_model.safetensors",
              "text_encoder": "model.safetensors", "controlnet": "diffusion_pytorch_model.safetensors"}
UNREAD_KEYS = {"_class_name", "_diffusers_version", "architectures", "dtype", "final_logit_softcapping",
               "initializer_range", "max_position_embeddings", "model_type", "tie_word_embeddings",
               "transformers_version", "use_cache"}
REQUIRED_KEYS = {"transformer": {"in_channels", "num_attention_heads", "attention_head_dim", "num_layers",
                                 "caption_channels"},
                 "controlnet": {"in_channels", "num_attention_heads", "attention_head_dim", "caption_channels"},
                 "vae": {"latent_channels", "encoder_block_out_channels", "decoder_block_out_channels"},
                 "text_encoder": {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                  "num_attention_heads", "num_key_value_heads", "head_dim"}}
POSITIVE_FLOAT_KEYS = {"mlp_ratio", "norm_eps", "rms_norm_eps", "scaling_factor", "attn_logit_softcapping",
                       "query_pre_attn_scalar"}
IGNORED_VALUE_KEYS = {"dropout", "attention_dropout"}  # type-checked, value unused at inference
TOKEN_ID_KEYS = {"pad_token_id", "bos_token_id", "eos_token_id"}
PER_STAGE_STRING_KEYS = {"decoder_act_fns", "decoder_norm_types", "encoder_block_types", "decoder_block_types"}


def model_case(ctx, d, case) -> Path:
    m = copy_model(ctx, d)
    case.opts["--model"] = str(m)
    return m


def uses(rng, d, case, comp: str) -> None:
    """A case that breaks `comp` runs with a sketch when comp is the ControlNet, so that it is used for sure."""
    if comp == "controlnet" and "--sketch" not in case.opts:
        with_sketch(rng, d, case)


def read_keys(cfg: dict, pred) -> List[str]:
    return [k for k, v in cfg.items() if k not in UNREAD_KEYS and pred(v)]


def pick_config(ctx, rng, d, case, pred):
    """A copy of the model, one component whose config has a key matching pred, and that key."""
    m = model_case(ctx, d, case)
    comps = [c for c in COMPONENTS if read_keys(json.loads((m / c / "config.json").read_text()), pred)]
    comp = rng.choice(comps)
    uses(rng, d, case, comp)
    path = m / comp / "config.json"
    cfg = json.loads(path.read_text())
    key = rng.choice(read_keys(cfg, pred))
    case.names = [key, "%s/config.json" % comp]
    return m, comp, path, cfg, key


def is_int(v) -> bool:
    return type(v) is int


@family("model")
def model_cfg_int(ctx, rng, d, case):
    m, comp, path, cfg, key = pick_config(ctx, rng, d, case, is_int)
    orig = cfg[key]
    label, value = rng.choice([("1e9", 10 ** 9), ("2^32+6", 4294967302), ("2^63", 2 ** 63), ("2^64", 2 ** 64),
                               ("2^32+original", 2 ** 32 + orig), ("-1", -1), ("0", 0), ("-2^31-1", -2 ** 31 - 1),
                               ("1e9 as a float literal", "@RAW:v"), ("1e19 float", "@RAW:w")])
    cfg[key] = value
    path.write_text(json_with_raw(cfg, {"v": "1e9", "w": "1e19"}))
    expect = "fail"
    if key in TOKEN_ID_KEYS and value in (0, -1):
        expect = "any"
    if key == "sliding_window" and label.startswith("1e9"):
        expect = "any"
    case.expect, case.desc = expect, "%s/config.json %s = %s (was %s)" % (comp, key, label, orig)


@family("model")
def model_cfg_float(ctx, rng, d, case):
    m, comp, path, cfg, key = pick_config(ctx, rng, d, case, lambda v: type(v) is float)
    orig = cfg[key]
    label, value = rng.choice([("1e308", 1e308), ("-1", -1.0), ("0", 0.0), ("1e400", "@RAW:big"),
                               ("-1e400", "@RAW:nbig"), ("1e-310", 1e-310), ("NaN literal", "@RAW:nan"),
                               ("Infinity literal", "@RAW:inf")])
    cfg[key] = value
    path.write_text(json_with_raw(cfg, {"big": "1e400", "nbig": "-1e400", "nan": "NaN", "inf": "Infinity"}))
    if label in ("NaN literal", "Infinity literal"):
        expect = "fail"  # not JSON
    elif label in ("1e400", "-1e400"):
        expect = "any" if key in IGNORED_VALUE_KEYS else "fail"
    elif label in ("-1", "0"):
        expect = "fail" if key in POSITIVE_FLOAT_KEYS else "any"
    elif label == "1e308":
        expect = "fail" if key in ("mlp_ratio", "norm_eps") else "any"
    else:
        expect = "any"
    case.expect, case.desc = expect, "%s/config.json %s = %s (was %s)" % (comp, key, label, orig)


@family("model")
def model_cfg_type(ctx, rng, d, case):
    m, comp, path, cfg, key = pick_config(ctx, rng, d, case, lambda v: v is not None)
    orig = cfg[key]
    expect = "fail"
    if isinstance(orig, bool):
        choices = [("string", "true"), ("integer 1", 1), ("list", [orig])]
    elif isinstance(orig, int):
        choices = [("string", str(orig)), ("list", [orig]), ("object", {}), ("true", True), ("x.5", orig + 0.5)]
    elif isinstance(orig, float):
        choices = [("string", str(orig)), ("list", [orig]), ("true", True), ("object", {})]
    elif isinstance(orig, str):
        choices = [("number", 7), ("list of numbers", [7]), ("true", True), ("object", {})]
        if key not in PER_STAGE_STRING_KEYS:
            choices.append(("list of strings", [orig]))
    elif isinstance(orig, list):
        choices = [("string", ",".join(map(str, orig))), ("number", 8), ("object", {}), ("empty list", []),
                   ("one entry fewer", orig[:-1]), ("one entry more", orig + orig[-1:]),
                   ("nested garbage", [["x"]] * len(orig))]
        if orig and isinstance(orig[0], int):
            choices += [("negative entry", [-e for e in orig]), ("2^32+entry", [2 ** 32 + e for e in orig]),
                        ("float entries", [e + 0.5 for e in orig])]
        if orig and isinstance(orig[0], list):
            choices += [("even kernel", [[4] for _ in orig]), ("2^32+kernel", [[2 ** 32 + 5] for _ in orig])]
        if orig and isinstance(orig[0], str):
            choices += [("unknown entry", ["bogus"] * len(orig))]
    else:  # object (rope_parameters)
        choices = [("string", "x"), ("list", []), ("rope_theta -1", {"rope_theta": -1.0, "rope_type": "default"}),
                   ("rope_type linear", {"rope_theta": 10000.0, "rope_type": "linear"}),
                   ("rope_theta string", {"rope_theta": "1e4", "rope_type": "default"}),
                   ("rope_theta 0", {"rope_theta": 0, "rope_type": "default"})]
    label, value = rng.choice(choices)
    if key == "eos_token_id" and label == "list":
        expect = "any"  # transformers allows a list
    cfg[key] = value
    path.write_text(json.dumps(cfg, indent=2))
    case.expect, case.desc = expect, "%s/config.json %s: %s -> %s" % (comp, key, json.dumps(orig)[:30], label)


@family("model")
def model_cfg_string(ctx, rng, d, case):
    m, comp, path, cfg, key = pick_config(ctx, rng, d, case, lambda v: isinstance(v, str))
    value = rng.choice(["bogus", "", cfg[key].upper(), cfg[key] + " ", "silu\u0000", "x" * 10000])
    cfg[key] = value
    path.write_text(json.dumps(cfg, indent=2))
    case.expect = "fail"
    case.desc = "%s/config.json %s = %r" % (comp, key, value if len(value) < 20 else value[:20] + "...")


@family("model")
def model_cfg_null_or_missing(ctx, rng, d, case):
    m, comp, path, cfg, key = pick_config(ctx, rng, d, case, lambda v: v is not None)
    how = rng.choice(["null", "removed"])
    if how == "null":
        cfg[key] = None
    else:
        del cfg[key]
    path.write_text(json.dumps(cfg, indent=2))
    case.expect = "fail" if key in REQUIRED_KEYS[comp] else "any"
    case.names = list(case.names) + ["%s/%s" % (comp, COMPONENTS[comp])]
    case.desc = "%s/config.json %s %s" % (comp, key, how)


@family("model")
def model_cfg_unknown_key(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    comp = rng.choice(list(COMPONENTS))
    uses(rng, d, case, comp)
    path = m / comp / "config.json"
    cfg = json.loads(path.read_text())
    key, value = rng.choice([("bogus_key", 1), ("num_layer", 99), ("", "empty key"), ("k" * 10000, True),
                             ("__proto__", {"x": 1}), ("nested", {"a": [1, {"b": None}]}),
                             ("unicode_\u00e9", "\u2603")])
    cfg[key] = value
    path.write_text(json.dumps(cfg, indent=2))
    case.expect, case.names = "any", ["%s/config.json" % comp]
    case.desc = "%s/config.json unknown key %r" % (comp, key[:20])


@family("model")
def model_cfg_json(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    comp = rng.choice(list(COMPONENTS))
    uses(rng, d, case, comp)
    path = m / comp / "config.json"
    text = path.read_text()
    cfg = json.loads(text)
    kind = rng.choice(["truncated", "trailing comma", "comment", "single quotes", "top-level list",
                       "top-level number", "top-level string", "top-level null", "BOM", "duplicate key",
                       "deep nesting (unknown key)", "deep nesting (read key)", "invalid UTF-8", "NUL byte",
                       "trailing garbage", "two objects"])
    expect = "fail"
    if kind == "truncated":
        data = text[:rng.randrange(1, len(text) - 1)]
    elif kind == "trailing comma":
        data = text.rstrip().rstrip("}") + ",}"
    elif kind == "comment":
        data = "// written by hand\n" + text
    elif kind == "single quotes":
        data = text.replace('"', "'")
    elif kind.startswith("top-level"):
        data = {"top-level list": "[]", "top-level number": "42", "top-level string": '"config"',
                "top-level null": "null"}[kind]
    elif kind == "BOM":
        data, expect = "\ufeff" + text, "any"
    elif kind == "duplicate key":
        key = rng.choice(list(cfg))
        data, expect = text.rstrip().rstrip("}") + ', "%s": 999}' % key, "any"
    elif kind.startswith("deep nesting"):
        depth = rng.choice([10000, 100000, 1000000])
        key = "bogus" if "unknown" in kind else rng.choice(read_keys(cfg, lambda v: v is not None))
        cfg[key] = "@RAW:deep"
        data = json_with_raw(cfg, {"deep": "[" * depth + "]" * depth})
        expect = "any" if "unknown" in kind else "fail"
        kind += " %d" % depth
    elif kind == "invalid UTF-8":
        cfg["note"] = "@RAW:bad"
        data = json_with_raw(cfg, {"bad": '"\udcff\udcfe"'})
    elif kind == "NUL byte":
        data = text[:len(text) // 2] + "\0" + text[len(text) // 2:]
    elif kind == "trailing garbage":
        data = text + " x"
    else:
        data = text + text
    path.write_bytes(data.encode("utf-8", "surrogateescape"))
    case.expect, case.names, case.desc = expect, ["%s/config.json" % comp], "%s/config.json: %s" % (comp, kind)


@family("model")
def model_file_kind(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    comp = rng.choice(list(COMPONENTS))
    uses(rng, d, case, comp)
    rel = rng.choice(["%s/config.json" % comp, "%s/%s" % (comp, COMPONENTS[comp]), "tokenizer/tokenizer.model"])
    path = m / rel
    kind = rng.choice(["directory", "empty file", "missing", "dangling symlink", "symlink loop", "symlink to folder"])
    path.unlink()
    if kind == "directory":
        path.mkdir()
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "dangling symlink":
        os.symlink(str(d / "nothing-here"), path)
    elif kind == "symlink loop":
        os.symlink(str(path), path)
    elif kind == "symlink to folder":
        os.symlink(str(m), path)
    # naming the file, or the folder that lacks it, will do
    case.expect, case.names, case.desc = "fail", [rel, Path(rel).name, str(Path(rel).parent)], "%s: %s" % (rel, kind)


@family("model", limit=1, heavy=True)
def model_big_config(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    comp = rng.choice(list(COMPONENTS))
    uses(rng, d, case, comp)
    path = m / comp / "config.json"
    cfg = json.loads(path.read_text())
    if rng.random() < 0.5:
        cfg["padding"] = "a" * (50 << 20)
        path.write_text(json.dumps(cfg))
        kind = "50 MB config (a long unknown string)"
    else:
        path.write_text(" " * (50 << 20) + json.dumps(cfg))
        kind = "50 MB config (leading whitespace)"
    case.expect, case.names, case.desc = "any", ["%s/config.json" % comp], "%s/config.json: %s" % (comp, kind)


MODEL_FILES = ["transformer/config.json", "vae/diffusion_pytorch_model.safetensors", "tokenizer/tokenizer.model",
               "sprint_pipeline.json", "text_encoder/config.json"]


@family("model", limit=1)
def model_fifo(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    rel = rng.choice(MODEL_FILES)
    path = m / rel
    if path.exists():
        path.unlink()
    os.mkfifo(path)
    case.expect, case.names, case.desc = "fail", [rel, Path(rel).name], "%s is a FIFO" % rel


@family("model", limit=2)
def model_dev_zero(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    rel = rng.choice(MODEL_FILES)
    path = m / rel
    if path.exists():
        path.unlink()
    os.symlink("/dev/zero", path)
    case.expect, case.names, case.desc = "fail", [rel, Path(rel).name], "%s -> /dev/zero" % rel


def pick_weights(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    comp = rng.choice(list(COMPONENTS))
    uses(rng, d, case, comp)
    rel = "%s/%s" % (comp, COMPONENTS[comp])
    case.names = [rel]
    return m / rel, rel


@family("model")
def model_st_truncated(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    where, cut = rng.choice([("in the length", rng.randrange(0, 8)), ("in the header", rng.randrange(8, 8 + n)),
                             ("in the data", rng.randrange(8 + n, len(b))), ("last byte", len(b) - 1)])
    path.write_bytes(b[:cut])
    case.expect, case.desc = "fail", "%s truncated %s (%d of %d bytes)" % (rel, where, cut, len(b))


@family("model")
def model_st_header_length(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    label, value = rng.choice([("+1", n + 1), ("-1", n - 1), ("+8", n + 8), ("-8", n - 8), ("0", 0),
                               ("2^63", 2 ** 63), ("2^64-1", 2 ** 64 - 1), ("file size", len(b)),
                               ("file size - 8", len(b) - 8), ("100 MB", 100 << 20)])
    path.write_bytes(struct.pack("<Q", value) + b[8:])
    case.expect, case.desc = "fail", "%s header length %s (%d -> %d)" % (rel, label, n, value)


@family("model")
def model_st_header_garbage(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    b = path.read_bytes()
    (n,) = struct.unpack("<Q", b[:8])
    kind = rng.choice(["random bytes", "{} padded", "[] padded", "entries not objects", "numbers as strings",
                       "data_offsets of three", "BOM-prefixed", "metadata not strings", "huge shape"])
    header, data = st_load(path)
    expect = "fail"
    if kind == "random bytes":
        hb = bytes(rng.randrange(256) for _ in range(n))
    elif kind in ("{} padded", "[] padded"):
        hb = kind[:2].encode().ljust(n, b" ")
    else:
        t = rng.choice(st_tensors(header))
        if kind == "entries not objects":
            header[t] = [header[t]["dtype"]]
        elif kind == "numbers as strings":
            header[t]["data_offsets"] = [str(x) for x in header[t]["data_offsets"]]
        elif kind == "data_offsets of three":
            header[t]["data_offsets"] = header[t]["data_offsets"] + [0]
        elif kind == "metadata not strings":
            header["__metadata__"] = {"format": 7, "nested": {"a": [1]}}
            expect = "any"
        elif kind == "huge shape":
            header[t]["shape"] = [2 ** 62, 2 ** 62]
        hb = json.dumps(header).encode()
        if kind == "BOM-prefixed":
            hb = b"\xef\xbb\xbf" + hb
            expect = "any"
        hb += b" " * (-len(hb) % 8)
        n = len(hb)
        case.names = [rel, t]
    path.write_bytes(struct.pack("<Q", n) + hb + data)
    case.expect, case.desc = expect, "%s header: %s" % (rel, kind)


@family("model")
def model_st_values(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    header, data = st_load(path)
    t = rng.choice([k for k in st_tensors(header) if header[k]["dtype"] == "F32"])
    b0, b1 = header[t]["data_offsets"]
    label, value = rng.choice([("NaN", float("nan")), ("+Inf", float("inf")), ("-Inf", float("-inf")),
                               ("3e38", 3e38), ("-3e38", -3e38), ("denormal 1e-45", 1e-45)])
    n = (b1 - b0) // 4
    every = rng.random() < 0.5
    if every:
        new = struct.pack("<%df" % n, *([value] * n))
    else:
        new = data[b0:b1 - 4] + struct.pack("<f", value)
    data = data[:b0] + new + data[b1:]
    st_save(path, header, data)
    case.expect = "fail" if label in ("NaN", "+Inf", "-Inf") else "any"
    case.names = [t, rel]
    case.desc = "%s tensor %s: %s %s" % (rel, t, "every value" if every else "last value", label)


@family("model")
def model_st_trailing(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    extra = bytes(rng.randrange(256) for _ in range(rng.choice([1, 7, 4096])))
    with open(path, "ab") as f:
        f.write(extra)
    case.expect, case.desc = "fail", "%s with %d trailing bytes after the data" % (rel, len(extra))


@family("model")
def model_st_dtype(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    header, data = st_load(path)
    t = rng.choice(st_tensors(header))
    value = rng.choice(["F16", "BF16", "F64", "I32", "U8", "BOOL", "F8_E4M3", "f32", "", 5, None, "F32 "])
    header[t]["dtype"] = value
    st_save(path, header, data)
    case.names = [t, rel]
    case.expect, case.desc = "fail", "%s tensor %s dtype F32 -> %r" % (rel, t, value)


@family("model")
def model_st_shape(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    header, data = st_load(path)
    t = rng.choice(st_tensors(header))
    shape = header[t]["shape"]
    numel = 1
    for s in shape:
        numel *= s
    choices = [("flattened", [numel]), ("extra dim 1", shape + [1]), ("[2^62, 2^62]", [2 ** 62, 2 ** 62]),
               ("[-1]", [-1]), ("scalar []", []), ("[0]", [0]), ("[2^63]", [2 ** 63]), ("float dims", [numel + 0.0]),
               ("string dims", [str(numel)])]
    if len(shape) >= 2 and shape[0] != shape[-1]:
        choices.append(("reversed", shape[::-1]))
    label, value = rng.choice(choices)
    header[t]["shape"] = value
    st_save(path, header, data)
    case.names = [t, rel]
    case.expect, case.desc = "fail", "%s tensor %s shape %s -> %s" % (rel, t, shape, label)


@family("model")
def model_st_offsets(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    header, data = st_load(path)
    names = st_tensors(header)
    t = rng.choice(names)
    b0, b1 = header[t]["data_offsets"]
    same = [k for k in names if k != t and header[k]["shape"] == header[t]["shape"]]
    choices = [("begin > end", [b1, b0]), ("past the end", [len(data), len(data) + b1 - b0]),
               ("negative", [-4, b1 - b0 - 4]), ("2^64 range", [2 ** 64 - 4, 2 ** 64]),
               ("shifted by 1 byte", [b0 + 1, b1 + 1])]
    if same:
        other = rng.choice(same)
        choices.append(("aliasing tensor %s" % other, header[other]["data_offsets"]))
    label, value = rng.choice(choices)
    header[t]["data_offsets"] = value
    st_save(path, header, data)
    case.names = [t, rel]
    case.expect, case.desc = "fail", "%s tensor %s data_offsets: %s" % (rel, t, label)


@family("model")
def model_st_tensor_set(ctx, rng, d, case):
    path, rel = pick_weights(ctx, rng, d, case)
    header, data = st_load(path)
    names = st_tensors(header)
    t = rng.choice(names)
    kind = rng.choice(["removed", "renamed", "extra tensor", "duplicate entry name with a NUL", "empty name"])
    expect = "fail"
    if kind == "removed":
        del header[t]
    elif kind == "renamed":
        header[t + ".bogus"] = header.pop(t)
    elif kind == "extra tensor":
        header["bogus.extra.weight"] = dict(header[t])
        expect = "any"
    elif kind == "duplicate entry name with a NUL":
        header[t + "\u0000x"] = dict(header[t])
        expect = "any"
    else:
        header[""] = dict(header[t])
        expect = "any"
    st_save(path, header, data)
    case.names = [t, rel]
    case.expect, case.desc = expect, "%s tensor %s %s" % (rel, t, kind)


SCHEDULER = {"_class_name": "SCMScheduler", "num_train_timesteps": 1000, "prediction_type": "trigflow",
             "sigma_data": 0.5}
MODEL_INDEX_KEYS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")


@family("model")
def model_index(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    path = m / "model_index.json"
    idx = json.loads(path.read_text())
    kind = rng.choice(["FluxPipeline", "StableDiffusionPipeline", "SanaPipeline", "broken JSON", "missing",
                       "transformer class FluxTransformer2DModel", "valid"])
    expect = "fail"
    if kind in ("FluxPipeline", "StableDiffusionPipeline", "SanaPipeline"):
        idx["_class_name"] = kind
        path.write_text(json.dumps(idx, indent=2))
    elif kind == "transformer class FluxTransformer2DModel":
        idx["transformer"] = ["diffusers", "FluxTransformer2DModel"]
        path.write_text(json.dumps(idx, indent=2))
    elif kind == "broken JSON":
        path.write_text(path.read_text()[:20])
        expect = "any"
    elif kind == "missing":
        path.unlink()
        expect = "any"
    else:
        expect = "ok"
    case.expect, case.names, case.desc = expect, ["model_index.json"], "model_index.json: %s" % kind


@family("model")
def model_scheduler(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    (m / "scheduler").mkdir()
    path = m / "scheduler" / "scheduler_config.json"
    cfg = dict(SCHEDULER)
    kind, key, value, expect = rng.choice([
        ("prediction_type epsilon", "prediction_type", "epsilon", "fail"),
        ("prediction_type v_prediction", "prediction_type", "v_prediction", "fail"),
        ("sigma_data -1", "sigma_data", -1, "fail"), ("sigma_data 0", "sigma_data", 0, "fail"),
        # Another data scale is a legal SCMScheduler setting, which the sampler uses: it must work.
        ("sigma_data 1.0", "sigma_data", 1.0, "ok"), ("DDIMScheduler", "_class_name", "DDIMScheduler", "fail"),
        ("valid", None, None, "ok"), ("broken JSON", None, None, "any")])
    if key:
        cfg[key] = value
    path.write_text(json.dumps(cfg, indent=2) if kind != "broken JSON" else '{"sigma_data": ')
    case.names = ["scheduler_config.json", key or "scheduler"]
    case.expect, case.desc = expect, "scheduler/scheduler_config.json: %s" % kind


@family("model")
def model_sprint_pipeline(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    path = m / "sprint_pipeline.json"
    cfg = {"complex_human_instruction": False, "lowercase": True, "max_sequence_length": 24}
    kind, key, value, expect = rng.choice([
        ("unknown key", "lowercas", False, "any"), ("unknown key", "bogus", {"a": 1}, "any"),
        ("max_sequence_length 1", "max_sequence_length", 1, "fail"),
        ("max_sequence_length 0", "max_sequence_length", 0, "fail"),
        ("max_sequence_length -1", "max_sequence_length", -1, "fail"),
        ("max_sequence_length 1e9", "max_sequence_length", 10 ** 9, "fail"),
        ("max_sequence_length 2^31", "max_sequence_length", 2 ** 31, "fail"),
        ("max_sequence_length 2^32+24", "max_sequence_length", 2 ** 32 + 24, "fail"),
        ("max_sequence_length 300", "max_sequence_length", 300, "any"),
        ("max_sequence_length \"24\"", "max_sequence_length", "24", "fail"),
        ("sketch_canvas 16385", "sketch_canvas", 16385, "fail"), ("sketch_canvas -1", "sketch_canvas", -1, "fail"),
        ("sketch_canvas 2^32+64", "sketch_canvas", 2 ** 32 + 64, "fail"),
        ("lowercase \"yes\"", "lowercase", "yes", "fail"),
        ("complex_human_instruction 1", "complex_human_instruction", 1, "fail"),
        ("top-level list", None, [], "fail"), ("broken JSON", None, None, "fail"),
        ("sketch_canvas 64 with a 200x100 sketch", "sketch_canvas", 64, "any")])
    if key:
        cfg[key] = value
    if kind == "top-level list":
        path.write_text("[]")
    elif kind == "broken JSON":
        path.write_text('{"lowercase": tru')
    else:
        path.write_text(json.dumps(cfg, indent=2))
    if "sketch" in kind and "with" in kind:
        p = d / "sketch.png"
        p.write_bytes(sketch_png(rng, 200, 100))
        case.opts["--sketch"] = str(p)
    case.names = ["sprint_pipeline.json", key or "sprint_pipeline"]
    case.expect, case.desc = expect, "sprint_pipeline.json: %s" % kind


@family("model")
def model_tokenizer(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    path = m / "tokenizer" / "tokenizer.model"
    b = path.read_bytes()
    kind = rng.choice(["random bytes", "truncated", "bytes flipped", "JSON instead", "other model's tokenizer",
                       "1 byte"])
    expect = "fail"
    if kind == "random bytes":
        path.write_bytes(bytes(rng.randrange(256) for _ in range(len(b))))
    elif kind == "truncated":
        path.write_bytes(b[:rng.randrange(1, len(b))])
    elif kind == "bytes flipped":
        bb = bytearray(b)
        for _ in range(8):
            bb[rng.randrange(len(bb))] ^= 0xFF
        path.write_bytes(bytes(bb))
        expect = "any"
    elif kind == "JSON instead":
        path.write_text('{"model": {"type": "BPE"}}')
    elif kind == "other model's tokenizer":
        other = ctx.repo / "assets/models/sprint-emoji-64/tokenizer/tokenizer.model" if ctx.repo else None
        if other and other.is_file() and other.read_bytes() != b:
            shutil.copy(other, path)
            case.names = ["vocab_size", "tokenizer"]
        else:
            path.write_bytes(b"\x0a")
    else:
        path.write_bytes(b"\x0a")
    if not case.names:
        case.names = ["tokenizer"]
    case.expect, case.desc = expect, "tokenizer/tokenizer.model: %s" % kind


@family("model")
def model_structure(ctx, rng, d, case):
    m = model_case(ctx, d, case)
    kind = rng.choice(["no transformer/", "no vae/", "no text_encoder/", "no tokenizer/", "no controlnet/",
                       "no controlnet/ with a sketch", "controlnet config missing", "vae/ is a file",
                       "weights missing", "sharded index naming a missing shard"])
    expect, names = "fail", []
    if kind.startswith("no ") and "controlnet" not in kind:
        sub = kind[3:-1]
        shutil.rmtree(m / sub)
        names = [sub]
    elif kind == "no controlnet/":
        shutil.rmtree(m / "controlnet")
        expect = "ok"
    elif kind == "no controlnet/ with a sketch":
        shutil.rmtree(m / "controlnet")
        with_sketch(rng, d, case)
        names = ["controlnet"]
    elif kind == "controlnet config missing":
        (m / "controlnet" / "config.json").unlink()
        names = ["controlnet"]
    elif kind == "vae/ is a file":
        shutil.rmtree(m / "vae")
        (m / "vae").write_text("not a folder")
        names = ["vae"]
    elif kind == "weights missing":
        comp = rng.choice(list(COMPONENTS))
        (m / comp / COMPONENTS[comp]).unlink()
        names = [comp]
    else:
        w = m / "transformer" / "diffusion_pytorch_model.safetensors"
        header, _ = st_load(w)
        w.unlink()
        index = {"metadata": {}, "weight_map": {k: "diffusion_pytorch_model-00001-of-00002.safetensors"
                                                for k in st_tensors(header)}}
        (m / "transformer" / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
        names = ["00001-of-00002", "transformer"]
    case.expect, case.names, case.desc = expect, names, "model folder: %s" % kind


# ------------------------------------------------------------------------------------------------------------------
# Class "image": --sketch / --image PNGs

def image_flag(rng, case, path: Path) -> str:
    """--sketch (70 %) or --image; photos get --size 64x64 (edge detection wants >= 64 px)."""
    flag = "--sketch" if rng.random() < 0.7 else "--image"
    case.opts[flag] = str(path)
    if flag == "--image":
        case.opts["--size"] = "64x64"
    case.names = [path.name]
    return flag


@family("image")
def img_formats(ctx, rng, d, case):
    fmt = rng.choice(list(SKETCH_FORMATS))
    interlace = rng.random() < 0.3
    p = d / "in.png"
    flag = image_flag(rng, case, p)
    n = 64 if flag == "--image" else 32
    p.write_bytes(sketch_png(rng, n, n, fmt, interlace))
    case.expect, case.size = "ok", (n, n)
    case.desc = "%s %dx%d %s%s" % (flag, n, n, fmt, " interlaced" if interlace else "")


@family("image")
def img_sizes(ctx, rng, d, case):
    w, h = rng.choice([(1, 1), (1, 64), (64, 1), (33, 17), (256, 256), (1024, 16), (3, 2000), (32, 32)])
    p = d / "in.png"
    p.write_bytes(sketch_png(rng, w, h, "rgb8"))
    flag = image_flag(rng, case, p)
    case.expect, case.desc = "any", "%s %dx%d" % (flag, w, h)


@family("image")
def img_broken(ctx, rng, d, case):
    p = d / "in.png"
    good = sketch_png(rng, 32, 32, "rgb8")
    kind = rng.choice(["truncated", "random bytes", "random bytes after the signature", "empty file",
                       "signature only", "JPEG", "GIF", "BMP", "text", "IDAT not zlib", "IDAT too short",
                       "bad filter byte", "IDAT CRC flipped", "no IDAT", "no IEND", "text chunk CRC flipped",
                       "IDAT too long"])
    expect = "fail"
    if kind == "truncated":
        data = good[:rng.randrange(9, len(good) - 1)]
    elif kind == "random bytes":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    elif kind == "random bytes after the signature":
        data = PNG_SIG + bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    elif kind == "empty file":
        data = b""
    elif kind == "signature only":
        data = PNG_SIG
    elif kind == "JPEG":
        data = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200) + b"\xff\xd9"
    elif kind == "GIF":
        data = b"GIF89a\x20\x00\x20\x00\x00\x00\x00;"
    elif kind == "BMP":
        data = b"BM" + bytes(100)
    elif kind == "text":
        data = b"this is not a picture\n"
    else:
        raw = raw_scanlines([[(255, 255, 255)] * 32 for _ in range(32)], 32, 32, 8, False)
        idat = zlib.compress(raw)
        ihdr = PNG_SIG + ihdr_chunk(32, 32, 8, 2)
        txt = text_chunk("Comment", "hello", "tEXt")
        if kind == "IDAT not zlib":
            data = ihdr + png_chunk(b"IDAT", bytes(rng.randrange(256) for _ in range(300))) + png_chunk(b"IEND", b"")
        elif kind == "IDAT too short":
            data = ihdr + png_chunk(b"IDAT", zlib.compress(raw[:len(raw) // 3])) + png_chunk(b"IEND", b"")
        elif kind == "IDAT too long":
            data = ihdr + png_chunk(b"IDAT", zlib.compress(raw * 3)) + png_chunk(b"IEND", b"")
            expect = "any"
        elif kind == "bad filter byte":
            data = ihdr + png_chunk(b"IDAT", zlib.compress(b"\x07" + raw[1:])) + png_chunk(b"IEND", b"")
        elif kind == "IDAT CRC flipped":
            data = ihdr + png_chunk(b"IDAT", idat, crc=(zlib.crc32(b"IDAT" + idat) ^ 1) & 0xFFFFFFFF) + \
                png_chunk(b"IEND", b"")
        elif kind == "no IDAT":
            data = ihdr + png_chunk(b"IEND", b"")
        elif kind == "no IEND":
            data, expect = ihdr + png_chunk(b"IDAT", idat), "any"
        else:  # ancillary chunk with a bad CRC: libpng may warn and go on
            bad_txt = txt[:-4] + bytes([txt[-4] ^ 1]) + txt[-3:]
            data, expect = ihdr + bad_txt + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""), "any"
    p.write_bytes(data)
    flag = image_flag(rng, case, p)
    case.expect, case.desc = expect, "%s: %s" % (flag, kind)


@family("image")
def img_ihdr(ctx, rng, d, case):
    kind, (w, h, depth, ctype, inter, comp) = rng.choice([
        ("20000x20000, tiny IDAT", (20000, 20000, 8, 2, 0, 0)),
        ("1000000x1000000, tiny IDAT", (10 ** 6, 10 ** 6, 8, 2, 0, 0)),
        ("2^31-1 x 1", (2 ** 31 - 1, 1, 8, 2, 0, 0)), ("1 x 2^31-1", (1, 2 ** 31 - 1, 8, 2, 0, 0)),
        ("0x0", (0, 0, 8, 2, 0, 0)), ("0x32", (0, 32, 8, 2, 0, 0)), ("65536x65536", (65536, 65536, 8, 6, 0, 0)),
        ("bit depth 3", (32, 32, 3, 0, 0, 0)), ("colour type 5", (32, 32, 8, 5, 0, 0)),
        ("interlace 2", (32, 32, 8, 2, 2, 0)), ("compression 1", (32, 32, 8, 2, 0, 1)),
        ("palette without PLTE", (32, 32, 8, 3, 0, 0)), ("2^32-1 x 2^32-1", (2 ** 32 - 1, 2 ** 32 - 1, 8, 2, 0, 0))])
    p = d / "in.png"
    p.write_bytes(PNG_SIG + ihdr_chunk(w, h, depth, ctype, inter, comp) +
                  png_chunk(b"IDAT", zlib.compress(b"\0" * 97)) + png_chunk(b"IEND", b""))
    flag = image_flag(rng, case, p)
    case.expect, case.desc = "fail", "%s IHDR %s" % (flag, kind)


@family("image", limit=1, heavy=True)
def img_huge_real(ctx, rng, d, case):
    p = d / "huge.png"
    write_blank_png_streamed(p, 20000, 20000)
    flag = image_flag(rng, case, p)
    case.expect, case.desc = "any", "%s a real 20000x20000 white PNG (%d KB)" % (flag, p.stat().st_size >> 10)


@family("image", limit=2)
def img_text_bomb(ctx, rng, d, case):
    n = rng.choice([100, 300]) << 20
    comp, parts = zlib.compressobj(9), []
    chunk = b"a" * (1 << 20)
    parts = [comp.compress(chunk) for _ in range(n >> 20)] + [comp.flush()]
    ztxt = png_chunk(b"zTXt", b"Comment\0\0" + b"".join(parts))
    p = d / "in.png"
    p.write_bytes(sketch_png(rng, 32, 32, "rgb8", chunks=[ztxt]))
    flag = image_flag(rng, case, p)
    case.expect, case.desc = "any", "%s with a zTXt chunk inflating to %d MB" % (flag, n >> 20)


@family("image")
def img_many_chunks(ctx, rng, d, case):
    kind = rng.choice(["10000 tEXt chunks", "IDAT split in 1-byte chunks", "20000 unknown ancillary chunks"])
    raw = raw_scanlines([[(255, 255, 255) if (x + y) % 7 else (0, 0, 0) for x in range(32)] for y in range(32)],
                        32, 32, 8, False)
    idat = zlib.compress(raw)
    body = PNG_SIG + ihdr_chunk(32, 32, 8, 2)
    if kind == "10000 tEXt chunks":
        body += b"".join(text_chunk("k%d" % i, "v" * 10, "tEXt") for i in range(10000))
        body += png_chunk(b"IDAT", idat)
    elif kind == "IDAT split in 1-byte chunks":
        body += b"".join(png_chunk(b"IDAT", idat[i:i + 1]) for i in range(len(idat)))
    else:
        body += b"".join(png_chunk(b"zzZz", b"x" * 8) for _ in range(20000)) + png_chunk(b"IDAT", idat)
    p = d / "in.png"
    p.write_bytes(body + png_chunk(b"IEND", b""))
    flag = image_flag(rng, case, p)
    case.expect, case.desc = "any", "%s: %s" % (flag, kind)


@family("image")
def img_path_kind(ctx, rng, d, case):
    kind = rng.choice(["directory", "nonexistent", "dangling symlink", "symlink to /dev/zero", "symlink to /dev/null",
                       "name with newline"])
    p = d / "in.png"
    if kind == "directory":
        p.mkdir()
    elif kind == "dangling symlink":
        os.symlink(str(d / "nothing"), p)
    elif kind == "symlink to /dev/zero":
        os.symlink("/dev/zero", p)
    elif kind == "symlink to /dev/null":
        os.symlink("/dev/null", p)
    elif kind == "name with newline":
        p = d / "in\nput.png"
    flag = image_flag(rng, case, p)
    if kind == "name with newline":
        case.names = ["put.png"]
    case.expect, case.desc = "fail", "%s: %s" % (flag, kind)


@family("image", limit=1)
def img_fifo(ctx, rng, d, case):
    p = d / "in.png"
    os.mkfifo(p)
    flag = image_flag(rng, case, p)
    case.expect, case.desc = "fail", "%s is a FIFO" % flag


# ------------------------------------------------------------------------------------------------------------------
# Class "from": --from PNGs with hostile sprint:* chunks

@family("from")
def from_bad_value(ctx, rng, d, case):
    key, value = rng.choice(
        [("steps", v) for v in ["0.5", "0", "5", "-1", "abc", "", "99999999999", "4294967298", "2 2"]] +
        [("seed", v) for v in ["-1", "18446744073709551616", "0x10", "abc", "", "1e3", "+-1"]] +
        [("guidance", v) for v in ["0x10", "nan", "1e400", "inf", "-nan", "abc", ""]] +
        [("control_scale", v) for v in ["nan", "inf", "1e400", "abc"]] +
        [("thickness", v) for v in ["100", "-1", "abc"]] +
        [("size", v) for v in ["100000x100000", "0x0", "-32x32", "abc", "32x32x32", "", "4294967328x32"]] +
        [("timesteps", v) for v in ["abc", "nan,0", "1e400", "-1,0", "1.5708,nan,0"]] +
        [("model_path", v) for v in ["", "@missing", "@file"]])
    text = sprint_chunks(ctx, rng)
    if value == "@missing":
        value = str(d / "missing-model")
    elif value == "@file":
        value = str(d / "earlier.png")
    text["sprint:" + key] = value
    if key == "timesteps" and value == "1.5708,nan,0":
        text["sprint:steps"] = "2"
    if key in ("control_scale", "thickness"):
        s = d / "sketch.png"
        s.write_bytes(sketch_png(rng, 32, 32))
        text["sprint:sketch"] = str(s)
    p = d / "earlier.png"
    from_png(rng, p, text)
    from_case(case, p)
    case.names = ["sprint:" + key, key, "earlier.png"] if key != "model_path" else ["model", "earlier.png"]
    case.expect, case.desc = "fail", "--from chunk sprint:%s = %r" % (key, value[-30:])


@family("from")
def from_odd_value(ctx, rng, d, case):
    key, value = rng.choice([("steps", "2 "), ("steps", " 2"), ("steps", "+2"), ("steps", "02"),
                             ("seed", "18446744073709551615"), ("seed", " 5"), ("guidance", "-1"),
                             ("guidance", "1e308"), ("guidance", "4.5 "), ("size", "64X64"), ("size", "64x64 "),
                             ("size", "63x64"), ("prompt", ""), ("timesteps", "1.5708, 1.3, 0")])
    text = sprint_chunks(ctx, rng)
    text["sprint:" + key] = value
    if key == "timesteps":
        text["sprint:steps"] = "2"
    p = d / "earlier.png"
    from_png(rng, p, text)
    from_case(case, p)
    case.names = ["sprint:" + key, key]
    case.expect, case.desc = "any", "--from chunk sprint:%s = %r" % (key, value)


@family("from")
def from_prompt(ctx, rng, d, case):
    kind = rng.choice(["1 MB prompt", "embedded NUL", "invalid UTF-8", "control characters", "1 MB zTXt prompt"])
    text = sprint_chunks(ctx, rng)
    chunk_kind = None
    if kind == "1 MB prompt":
        text["sprint:prompt"] = (" ".join(rng.choice(WORDS) for _ in range(200000)))[:1 << 20]
        chunk_kind = "iTXt"
    elif kind == "1 MB zTXt prompt":
        text["sprint:prompt"] = "a" * (1 << 20)
        chunk_kind = "zTXt"
    elif kind == "embedded NUL":
        text["sprint:prompt"] = b"a red\0fox\0"
        chunk_kind = "iTXt"
    elif kind == "invalid UTF-8":
        text["sprint:prompt"] = b"a \xff\xfe red \xc3\x28 fox"
        chunk_kind = "iTXt"
    else:
        text["sprint:prompt"] = "a\x01\x02\x1b[31m red\x7f fox"
    p = d / "earlier.png"
    from_png(rng, p, text, chunk_kind)
    from_case(case, p)
    case.names = ["prompt", "earlier.png"]
    case.expect, case.desc = "any", "--from sprint:prompt: %s" % kind


@family("from")
def from_missing_chunks(ctx, rng, d, case):
    kind = rng.choice(["no sprint chunks", "no prompt and no seed", "no model_path", "no steps", "no text at all",
                       "only sprint:model (name)"])
    text = sprint_chunks(ctx, rng)
    expect, names = "fail", ["earlier.png", "--from", "sprint"]
    if kind == "no sprint chunks":
        text = {"Software": "GIMP", "Comment": "a picture"}
    elif kind == "no prompt and no seed":
        del text["sprint:prompt"], text["sprint:seed"]
    elif kind == "no model_path":
        del text["sprint:model_path"]
        names = ["model"]
    elif kind == "no steps":
        del text["sprint:steps"]
        expect = "ok"
    elif kind == "no text at all":
        text = {}
    else:
        text = {"sprint:model": "tiny_pipeline"}
    p = d / "earlier.png"
    from_png(rng, p, text)
    from_case(case, p)
    case.expect, case.names, case.desc = expect, names, "--from PNG: %s" % kind


@family("from")
def from_not_png(ctx, rng, d, case):
    kind = rng.choice(["random bytes", "truncated", "directory", "nonexistent", "empty", "symlink to /dev/zero"])
    p = d / "earlier.png"
    if kind == "random bytes":
        p.write_bytes(bytes(rng.randrange(256) for _ in range(2000)))
    elif kind == "truncated":
        from_png(rng, p, sprint_chunks(ctx, rng))
        b = p.read_bytes()
        p.write_bytes(b[:rng.randrange(9, len(b) - 1)])
    elif kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "symlink to /dev/zero":
        os.symlink("/dev/zero", p)
    from_case(case, p)
    case.expect, case.names, case.desc = "fail", ["earlier.png"], "--from: %s" % kind


@family("from")
def from_sketch_ref(ctx, rng, d, case):
    kind = rng.choice(["nonexistent", "directory", "garbage file", "valid sketch", "sketch and image both"])
    text = sprint_chunks(ctx, rng)
    s = d / "ref-sketch.png"
    text["sprint:control_scale"] = "1"
    text["sprint:thickness"] = "2"
    expect = "fail"
    if kind == "directory":
        s.mkdir()
    elif kind == "garbage file":
        s.write_bytes(b"garbage")
    elif kind in ("valid sketch", "sketch and image both"):
        s.write_bytes(sketch_png(rng, 32, 32))
        expect = "ok"
    text["sprint:sketch"] = str(s)
    if kind == "sketch and image both":
        ph = d / "ref-photo.png"
        ph.write_bytes(photo_png(rng, 32, 32))
        text["sprint:image"] = str(ph)
        expect = "any"
    p = d / "earlier.png"
    from_png(rng, p, text)
    from_case(case, p)
    case.expect, case.names, case.desc = expect, ["ref-sketch", "sketch"], "--from sprint:sketch: %s" % kind


@family("from")
def from_chunk_oddities(ctx, rng, d, case):
    kind = rng.choice(["duplicate seed chunks", "79-byte key", "latin-1 key",
                       "bad value overridden on the command line",
                       "model_path relative", "prompt in a tEXt and an iTXt"])
    text = sprint_chunks(ctx, rng)
    p = d / "earlier.png"
    extra: List[bytes] = []
    expect = "any"
    if kind == "duplicate seed chunks":
        extra = [text_chunk("sprint:seed", "12345", "tEXt")]
    elif kind == "79-byte key":
        text["sprint:" + "k" * 72] = "v"
    elif kind == "latin-1 key":
        text["sprint:pr\u00f6mpt"] = "x"
    elif kind == "bad value overridden on the command line":
        text["sprint:seed"] = "abc"
    elif kind == "model_path relative":
        text["sprint:model_path"] = os.path.relpath(ctx.model, d)
    else:
        extra = [text_chunk("sprint:prompt", "another prompt", "tEXt")]
    chunks = [text_chunk(k, v, rng.choice(["iTXt", "tEXt"])) for k, v in text.items()] + extra
    p.write_bytes(photo_png(rng, 32, 32, chunks))
    from_case(case, p)
    if kind == "bad value overridden on the command line":
        case.opts["--seed"] = "5"
    case.expect, case.names, case.desc = expect, ["earlier.png", "sprint"], "--from PNG: %s" % kind


@family("from", limit=1)
def from_fifo(ctx, rng, d, case):
    kind = rng.choice(["the --from file", "sprint:sketch", "sprint:model_path"])
    fifo = d / "fifo.png"
    os.mkfifo(fifo)
    if kind == "the --from file":
        p = fifo
    else:
        text = sprint_chunks(ctx, rng)
        text["sprint:sketch" if kind == "sprint:sketch" else "sprint:model_path"] = str(fifo)
        p = d / "earlier.png"
        from_png(rng, p, text)
    from_case(case, p)
    case.expect, case.names, case.desc = "fail", ["fifo.png"], "--from: %s is a FIFO" % kind


@family("from", limit=1, heavy=True)
def from_zbomb(ctx, rng, d, case):
    text = sprint_chunks(ctx, rng)
    comp = zlib.compressobj(9)
    parts = [comp.compress(b"a" * (1 << 20)) for _ in range(300)] + [comp.flush()]
    bomb = png_chunk(b"zTXt", b"sprint:prompt\0\0" + b"".join(parts))
    del text["sprint:prompt"]
    chunks = [text_chunk(k, v) for k, v in text.items()] + [bomb]
    p = d / "earlier.png"
    p.write_bytes(photo_png(rng, 32, 32, chunks))
    from_case(case, p)
    case.expect, case.names, case.desc = "any", ["prompt", "earlier.png"], "--from: sprint:prompt zTXt of 300 MB"


# ------------------------------------------------------------------------------------------------------------------
# Running one case

@dataclasses.dataclass
class RunResult:
    argv: List[str]
    rc: Optional[int] = None      # exit status, or -signal
    wall: float = 0.0
    max_rss_mb: float = 0.0
    killed: str = ""              # "timeout", "idle", "rss" when we killed it
    wchan: str = ""
    stderr: str = ""


def proc_stat(pid: int) -> Tuple[str, int]:
    """(state, utime + stime in ticks) of a process, ("", -1) when gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return rest[0], int(rest[11]) + int(rest[12])
    except (OSError, IndexError, ValueError):
        return "", -1


def proc_rss_kb(pid: int) -> int:
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def read_text(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def run_process(argv: List[str], cwd: Path, env: Dict[str, str], timeout: float, idle_timeout: float,
                as_limit: int, rss_limit_kb: int) -> RunResult:
    def limits():
        if as_limit > 0:
            resource.setrlimit(resource.RLIMIT_AS, (as_limit, as_limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 30, 2 << 30))
        now = os.nice(0)
        if now < 10:
            os.nice(10 - now)

    res = RunResult(argv=argv)
    err_path = cwd / "stderr.txt"
    with open(cwd / "stdout.txt", "wb") as out_f, open(err_path, "wb") as err_f:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, cwd=str(cwd), stdin=subprocess.DEVNULL, stdout=out_f, stderr=err_f, env=env,
                             preexec_fn=limits, start_new_session=True)
        last_cpu, idle_since, status, ru = -2, t0, None, None
        try:
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid:
                    break
                now = time.monotonic()
                state, cpu = proc_stat(p.pid)
                if state not in ("S", "D") or cpu != last_cpu:
                    idle_since, last_cpu = now, cpu
                if now - t0 > timeout:
                    res.killed = "timeout"
                elif idle_timeout > 0 and now - idle_since > idle_timeout:
                    res.killed = "idle"
                    res.wchan = read_text("/proc/%d/wchan" % p.pid)
                elif rss_limit_kb > 0 and proc_rss_kb(p.pid) > rss_limit_kb:
                    res.killed = "rss"
                if res.killed:
                    os.killpg(p.pid, signal.SIGKILL)
                    _, status, ru = os.wait4(p.pid, 0)
                    break
                time.sleep(0.02 if now - t0 < 2 else 0.1)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
                os.wait4(p.pid, 0)
            except OSError:
                pass
            raise
        finally:
            p.returncode = 0  # reaped by os.wait4 above; keeps Popen from waiting again
        res.wall = time.monotonic() - t0
    res.rc = os.waitstatus_to_exitcode(status)
    res.max_rss_mb = ru.ru_maxrss / 1024.0 if ru else 0.0
    res.stderr = err_path.read_bytes().decode("utf-8", "replace")
    return res


def error_message(stderr: str) -> List[str]:
    """The error message: from the last "...: error:" line to the end (CLI11's help hint dropped), else the last
    non-empty line."""
    lines = [ln.rstrip() for ln in stderr.splitlines() if ln.strip()]
    while lines and lines[-1].strip() == CLI11_TRAILER:
        lines.pop()
    for i in range(len(lines) - 1, -1, -1):
        if ": error:" in lines[i] or lines[i].startswith("error:"):
            return lines[i:]
    return lines[-1:]


def check_picture(path: Path, size: Optional[Tuple[int, int]]) -> Optional[str]:
    """None if path holds a valid PNG, not one single colour, of the given size; else what is wrong."""
    if not path.is_file():
        return "exit 0 but no picture at --out"
    data = path.read_bytes()
    try:
        w, h, c, px = decode_png(data)
    except (ValueError, zlib.error, struct.error) as e:
        return "exit 0 but --out is not a valid PNG: %s" % e
    if size and (w, h) != size:
        return "picture is %dx%d, asked for %dx%d" % (w, h, size[0], size[1])
    if is_one_colour(data, w, h, c, px):
        return "picture is one single colour%s (%dx%d)" % (" %s" % (tuple(px[:c]),) if px else "", w, h)
    return None


def classify(case: Case, res: RunResult, out_path: Optional[Path], strict: bool) -> Tuple[str, str]:
    err = res.stderr
    problems = []
    for check in case.checks:
        p = check()
        if p:
            problems.append(p)
    clobbered = "; ".join(p for p in problems if not p.startswith("temporary file"))
    leftovers = "; ".join(p for p in problems if p.startswith("temporary file"))
    note = (" [%s]" % leftovers) if leftovers else ""
    if res.killed in ("timeout", "idle"):
        how = ("no exit after %.0f s" % res.wall if res.killed == "timeout" else
               "asleep with no CPU use for the last %.0f s (wchan %s)" % (res.wall, res.wchan or "?"))
        return HANG, how + note
    mem_hit = [m for m in MEMORY_MARKS if m.lower() in err.lower()]
    if res.killed == "rss" or mem_hit:
        return MEMORY, ("resident memory over the limit" if res.killed == "rss" else "'%s' in stderr" % mem_hit[0]) + \
            ", peak RSS %.0f MB, exit %s" % (res.max_rss_mb, res.rc) + note
    if res.rc is not None and res.rc < 0:
        return CRASH, "signal %s (%s)" % (-res.rc, signal.Signals(-res.rc).name if -res.rc in
                                          signal.valid_signals() else "?") + note
    if clobbered:
        return SILENT, clobbered + " (exit %s)" % res.rc + note
    if res.rc == 0:
        if case.expect == "fail":
            return SILENT, "exit 0 on an input that must be refused" + note
        bad = check_picture(out_path, case.size) if out_path else None
        if bad:
            return SILENT, bad + note
        return OK, "exit 0" + note
    # non-zero exit
    marks = [m for m in BACKTRACE_MARKS if m in err]
    msg = error_message(err)
    if marks:
        verdict, why = NOISY, "backtrace ('%s')" % marks[0]
    elif not msg:
        verdict, why = NOISY, "no message at all"
    elif len(msg) > 1 and (strict or not all(ln.startswith((" ", "\t")) for ln in msg[1:])):
        verdict, why = NOISY, "%d-line message" % len(msg)
    elif case.names and not any(n.lower() in "\n".join(msg).lower() for n in case.names):
        verdict, why = NOISY, "message names none of %s" % ", ".join(repr(n) for n in case.names)
    else:
        verdict, why = CLEAN, "exit %d" % res.rc
    if case.expect == "ok":
        return REFUSED, "exit %d on an input that must work (%s)" % (res.rc, why) + note
    return verdict, (why if verdict == CLEAN else why + ", exit %d" % res.rc) + note


# ------------------------------------------------------------------------------------------------------------------
# The plan, the loop, the report

def plan(seed: int, cases: int) -> List[Tuple[str, Family]]:
    """(class, family) of every case: each class gets its share of --cases and cycles through its families in a
    seeded order, each family at most its limit times."""
    master = random.Random("plan/%d" % seed)
    counts = {c: max(1, int(round(cases * CLASS_SHARE[c]))) for c in CLASSES}
    counts["cli"] += cases - sum(counts.values())
    per_class: Dict[str, List[Family]] = {}
    for c in CLASSES:
        fams = [f for f in FAMILIES if f.cls == c]
        used: Dict[str, int] = {}
        seq: List[Family] = []
        while len(seq) < counts[c]:
            order = [f for f in fams if f.limit is None or used.get(f.name, 0) < f.limit]
            master.shuffle(order)
            for f in order:
                if len(seq) < counts[c]:
                    seq.append(f)
                    used[f.name] = used.get(f.name, 0) + 1
        per_class[c] = seq
    out = [(c, f) for c in CLASSES for f in per_class[c]]
    master.shuffle(out)  # interleave the classes
    return out


def display_argv(argv: List[object]) -> str:
    shown = []
    for a in argv:
        s = os.fsdecode(a) if isinstance(a, bytes) else str(a)
        shown.append("<%d-char argument>" % len(s) if len(s) > 160 else s)
    return shlex.join(shown)


def build_argv(exe: str, case: Case, d: Path, rng: random.Random, ctx: Ctx) -> List[object]:
    opts: Dict[str, object] = {"--model": str(ctx.model), "--prompt": random_prompt(rng),
                               "--seed": str(rng.randrange(10 ** 6)), "--device": "cpu", "--threads": "1",
                               "--out": str(d / "out.png")}
    for k, v in case.opts.items():
        if k in opts and v is None:
            del opts[k]
        elif v is not None:
            opts[k] = v
    argv: List[object] = [exe]
    for k, v in opts.items():
        argv += [k] if v is FLAG else [k, v]
    return argv + list(case.extra)


def tail(text: str, n: int = 6, width: int = 300) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()][-n:]
    return "\n".join("      | " + (ln if len(ln) <= width else ln[:width] + "...") for ln in lines) or "      | <empty>"


def make_writable(root: Path) -> None:
    for dirpath, dirnames, _ in os.walk(root):
        for dn in dirnames:
            p = os.path.join(dirpath, dn)
            if not os.path.islink(p):
                os.chmod(p, 0o755)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exe", required=True, help="the sprint-generate binary")
    ap.add_argument("--model", required=True,
                    help="the tiny fixture model folder (tests/fixtures/pipeline/tiny_pipeline)")
    ap.add_argument("--work", help="scratch folder for the cases (default: a new folder under $TMPDIR)")
    ap.add_argument("--seed", type=int, default=20251207, help="generates every input (default %(default)s)")
    ap.add_argument("--cases", type=int, default=300, help="number of cases (default %(default)s)")
    ap.add_argument("--case", type=int, action="append", help="run only this case index (repeatable)")
    ap.add_argument("--only", help="comma-separated classes to run: " + ",".join(CLASSES))
    ap.add_argument("--timeout", type=float, default=30.0, help="wall-clock limit per case, s (default %(default)s)")
    ap.add_argument("--heavy-timeout", type=float, default=60.0, help="the same for the few heavy cases")
    ap.add_argument("--idle-timeout", type=float, default=8.0,
                    help="a case asleep with no CPU use for this long is a hang (0: off; default %(default)s)")
    ap.add_argument("--as-limit-gib", type=float, default=6.0, help="RLIMIT_AS per case (0: off)")
    ap.add_argument("--rss-limit-gib", type=float, default=4.0, help="kill a case past this resident memory (0: off)")
    ap.add_argument("--strict-single-line", action="store_true",
                    help="count an error message with indented detail lines as noisy too")
    ap.add_argument("--list-failures", action="store_true", help="list every failure, not the first 5 per class")
    ap.add_argument("--keep", action="store_true", help="keep every case's inputs (default: failing cases only)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per case as it runs")
    ap.add_argument("--dry-run", action="store_true", help="build each case's inputs and print its command only")
    args = ap.parse_args(argv)

    exe = os.path.abspath(args.exe)
    model = Path(args.model).resolve()
    if not os.access(exe, os.X_OK) or not (model / "transformer").is_dir():
        print("hostile_cli: need an executable --exe and a model folder --model", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parents[2]
    ctx = Ctx(model, repo if (repo / "assets").is_dir() else None)
    work = Path(args.work) if args.work else Path(tempfile_mkdtemp())
    work.mkdir(parents=True, exist_ok=True)
    for old in work.glob("case-*"):
        make_writable(old)
        shutil.rmtree(old, ignore_errors=True)
    only = set(args.only.split(",")) if args.only else set(CLASSES)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPRINT_THREADS", "OMP_", "MKL_"))}
    env.update({"CUDA_VISIBLE_DEVICES": "", "LC_ALL": "C", "OMP_NUM_THREADS": "1"})
    as_limit = int(args.as_limit_gib * (1 << 30))
    rss_limit_kb = int(args.rss_limit_gib * (1 << 20))

    schedule = plan(args.seed, args.cases)
    picked = [(i, c, f) for i, (c, f) in enumerate(schedule)
              if c in only and (not args.case or i in args.case)]
    print("hostile_cli: %d cases (seed %d of %d), %s, work %s" % (len(picked), args.seed, args.cases, exe, work),
          flush=True)
    table: Dict[str, Dict[str, int]] = {c: {o: 0 for o in OUTCOMES} for c in CLASSES}
    failures: List[Tuple[Case, RunResult, str, str, Path]] = []
    walls: Dict[str, List[float]] = {c: [] for c in CLASSES}
    t_start = time.monotonic()
    for i, cls, fam in picked:
        d = work / ("case-%04d" % i)
        d.mkdir()
        rng = random.Random("case/%d/%d/%d" % (args.seed, args.cases, i))
        case = Case(index=i, cls=cls, family=fam.name, heavy=fam.heavy)
        fam.build(ctx, rng, d, case)
        argv = build_argv(exe, case, d, rng, ctx)
        if args.dry_run:
            print("  [%4d] %-6s %-26s expect %-4s %s\n         %s" % (i, cls, fam.name, case.expect, case.desc,
                                                                   display_argv(argv)))
            make_writable(d)
            shutil.rmtree(d, ignore_errors=True)
            continue
        out = None
        if "--out" in argv:
            o = argv[argv.index("--out") + 1]
            out = Path(o) if o else None
        res = run_process(argv, d, env, args.heavy_timeout if case.heavy else args.timeout, args.idle_timeout,
                          as_limit, rss_limit_kb)
        outcome, detail = classify(case, res, out, args.strict_single_line)
        table[cls][outcome] += 1
        walls[cls].append(res.wall)
        failed = outcome in FAILURES
        if args.verbose or failed:
            msg = " | ".join(error_message(res.stderr)) if res.rc else ""
            print("  [%4d] %-6s %-22s %-12s %5.1fs %5.0fMB  %s -- %s%s" % (
                i, cls, fam.name, outcome.upper() if failed else outcome, res.wall, res.max_rss_mb, case.desc,
                detail, ("\n           > " + msg[:300]) if args.verbose and msg else ""), flush=True)
        if failed:
            failures.append((case, res, outcome, detail, d))
        if not (failed or args.keep):
            make_writable(d)
            shutil.rmtree(d, ignore_errors=True)
    total = time.monotonic() - t_start
    if args.dry_run:
        return 0

    # ---- report
    print("\n=== outcomes (input class x outcome), %d cases in %.0f s (%.2f s per case) ===" % (
        len(picked), total, total / max(len(picked), 1)))
    header = "%-8s" % "class" + "".join("%13s" % o for o in OUTCOMES) + "%8s %9s" % ("cases", "s/case")
    print(header)
    for c in CLASSES:
        n = sum(table[c].values())
        if n:
            print("%-8s" % c + "".join("%13d" % table[c][o] for o in OUTCOMES) +
                  "%8d %9.2f" % (n, sum(walls[c]) / n))
    print("%-8s" % "total" + "".join("%13d" % sum(table[c][o] for c in CLASSES) for o in OUTCOMES) +
          "%8d" % len(picked))

    if failures:
        print("\n=== failures by family ===")
        by_fam: Dict[Tuple[str, str], int] = {}
        for case, _, outcome, _, _ in failures:
            by_fam[(case.family, outcome)] = by_fam.get((case.family, outcome), 0) + 1
        for (fam_name, outcome), n in sorted(by_fam.items()):
            print("  %-26s %-12s %d" % (fam_name, outcome, n))
        print("\n=== failing cases%s ===" % ("" if args.list_failures else " (first 5 per class and outcome)"))
        shown: Dict[Tuple[str, str], int] = {}
        for case, res, outcome, detail, d in failures:
            key = (case.cls, outcome)
            shown[key] = shown.get(key, 0) + 1
            if shown[key] > 5 and not args.list_failures:
                continue
            print("\n[%d] %s / %s: %s -- %s" % (case.index, case.cls, outcome.upper(), case.desc, detail))
            print("    expect %s; %.1f s, peak RSS %.0f MB; inputs kept in %s" % (case.expect, res.wall,
                                                                                 res.max_rss_mb, d))
            print("    re-run: %s --exe %s --model %s --seed %d --cases %d --case %d --keep" % (
                shlex.quote(sys.argv[0]), shlex.quote(exe), shlex.quote(str(model)), args.seed, args.cases,
                case.index))
            print("    $ cd %s && %s" % (shlex.quote(str(d)), display_argv(res.argv)))
            print("    stderr tail:\n" + tail(res.stderr))
        hidden = sum(max(0, n - 5) for n in shown.values())
        if hidden and not args.list_failures:
            print("\n(%d more failures not shown: --list-failures)" % hidden)
    print("\nhostile_cli: %d failure%s in %d cases" % (len(failures), "" if len(failures) == 1 else "s", len(picked)))
    return 1 if failures else 0


def tempfile_mkdtemp() -> str:
    import tempfile
    return tempfile.mkdtemp(prefix="sprint-hostile-")


if __name__ == "__main__":
    sys.exit(main())
