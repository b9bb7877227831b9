#!/usr/bin/env python3
"""Builds the offline emoji (image, caption) dataset that Sprint Studio's training reads.

Pictures come from the Noto Color Emoji font (Debian package fonts-noto-color-emoji) and, as a second drawing style of
the same emoji, from the EmojiOne 2 SVG artwork of the Debian package ruby-gemojione (rendered with rsvg-convert from
librsvg2-bin). Captions are the Unicode CLDR English names shipped by the python `emoji` package (Debian package
python3-emoji); an EmojiOne picture takes the captions and the split of the Noto emoji it draws. Nothing is
downloaded.

Output folder (read by training/src/data.cpp):
  images/<id>.png   size x size RGB, the emoji centred on white with a small margin
  manifest.jsonl    one JSON object per picture, sorted by id:
                    {"id", "file", "caption", "captions", "split", "codepoints", "group", "style", "base_id"}
  captions.txt      every caption variant of the train items, one per line (tokenizer training text)
  dataset.json      summary: counts, settings, package versions, builder version
  LICENSES.md       where the pictures and names come from and under which licences

<id> is the emoji's code points as lower-case hex (at least 4 digits) joined by '-', e.g. 1f34e, 1f468-200d-1f373,
0023-fe0f-20e3; an EmojiOne picture's id is "emojione-" + the Noto id (its base_id). The held-out split is a fixed
function of the base id, int(sha256(base_id)[:8], 16) / 2**32 < fraction, so both drawings of an emoji fall on the
same side.

The build is deterministic: the same font, packages and arguments give byte-identical files (--check verifies it).
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

BUILDER_VERSION = "build_emoji_dataset 2"
STYLES = ("noto", "emojione")
GEMOJIONE_DIR = "/usr/share/rubygems-integration/all/gems/gemojione-3.3.0"
DEFAULT_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
FONT_PIXEL_SIZE = 109          # the only size the CBDT bitmap strike of Noto Color Emoji loads at
MARGIN_FRACTION = 0.06         # empty border on each side, as a fraction of the output side
SKIN_TONES = range(0x1F3FB, 0x1F3FF + 1)
MISSING_PROBE = "\U0010FFFD"   # a private-use code point no emoji font has: renders as the font's .notdef
PRESENT_PROBE = "\U0001F600"   # grinning face: every colour emoji font has it
UNKNOWN_FLAG_PROBE = "\U0001F1FF\U0001F1FF"  # no region "ZZ": Noto draws its generic "unknown flag" glyph
FULLY_QUALIFIED = "fully_qualified"

# Coarse Unicode blocks of emoji code points, for the optional "group" field (reporting only).
BLOCKS = [
    (0x1F300, 0x1F5FF, "symbols and pictographs"),
    (0x1F600, 0x1F64F, "emoticons"),
    (0x1F680, 0x1F6FF, "transport and map"),
    (0x1F900, 0x1F9FF, "symbols and pictographs"),
    (0x1FA70, 0x1FAFF, "symbols and pictographs"),
    (0x2600, 0x26FF, "symbols"),
    (0x2700, 0x27BF, "symbols"),
]
PERSON_WORDS = {"person", "people", "man", "men", "woman", "women", "boy", "girl", "baby", "child", "family",
                "couple", "kiss"}


class UsageError(Exception):
    """A problem with the arguments or the inputs: reported in one line, exit status 2."""


@dataclass
class Item:
    """One emoji that made it into the dataset."""
    id: str
    text: str
    captions: list
    split: str
    group: str
    style: str = "noto"
    base_id: str = ""


@dataclass
class BuildResult:
    items: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)       # reason -> count
    not_in_font: list = field(default_factory=list)   # [{"id", "name", "reason"}]
    candidates: int = 0                                # fully-qualified emoji considered


# ---------------------------------------------------------------------------------------------------------------
# Inputs: the emoji package, the font, package versions
# ---------------------------------------------------------------------------------------------------------------

def try_import_emoji():
    try:
        import emoji
    except ImportError:
        return None
    return emoji


def import_emoji_module():
    """Imports the python `emoji` package; falls back to Debian's dist-packages (python3-emoji) outside the venv."""
    module = try_import_emoji()
    if module is None:
        for folder in debian_emoji_folders():
            if folder not in sys.path:
                sys.path.append(folder)
        module = try_import_emoji()
    if module is None:
        raise UsageError("the python 'emoji' package is missing: install the Debian package python3-emoji "
                         "(apt-get install python3-emoji)")
    return module


def debian_emoji_folders():
    """The folders that hold python3-emoji's `emoji` package, from dpkg, else the usual Debian location."""
    folders = []
    try:
        listing = subprocess.run(["dpkg", "-L", "python3-emoji"], capture_output=True, text=True, check=False).stdout
        for line in listing.splitlines():
            if line.endswith("/emoji/__init__.py"):
                folders.append(str(Path(line).parent.parent))
    except OSError:
        pass
    folders.append("/usr/lib/python3/dist-packages")
    return list(dict.fromkeys(folders))


def debian_version(package):
    """The installed version of a Debian package, or None (no dpkg, not installed)."""
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True,
                           check=False)
    except OSError:
        return None
    if r.returncode != 0:
        return None
    return r.stdout.strip() or None


def package_versions(emoji_module):
    from PIL import __version__ as pillow_version, features
    return {
        "fonts-noto-color-emoji": debian_version("fonts-noto-color-emoji"),
        "python3-emoji": debian_version("python3-emoji"),
        "emoji": getattr(emoji_module, "__version__", None),
        "pillow": pillow_version,
        "freetype": features.version("freetype2"),
        "raqm": features.version("raqm"),
        "ruby-gemojione": debian_version("ruby-gemojione"),
        "librsvg2-bin": debian_version("librsvg2-bin"),
    }


def load_font(path):
    """Loads the colour emoji font at its bitmap size; UsageError when it is missing or unreadable."""
    from PIL import ImageFont
    p = Path(path)
    if not p.exists():
        raise UsageError(f"font file '{path}' does not exist (install the Debian package fonts-noto-color-emoji "
                         "or pass --font)")
    if not p.is_file():
        raise UsageError(f"font '{path}' is not a regular file")
    try:
        font = ImageFont.truetype(str(p), FONT_PIXEL_SIZE)
    except OSError as e:
        raise UsageError(f"cannot read font '{path}' at size {FONT_PIXEL_SIZE}: {e} "
                         "(expected a colour bitmap emoji font such as NotoColorEmoji.ttf)") from None
    if font.layout_engine != ImageFont.Layout.RAQM:
        print("warning: Pillow has no raqm layout; multi-code-point emoji (ZWJ sequences, flags) will be skipped",
              file=sys.stderr)
    return font


# ---------------------------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------------------------

def render_rgba(font, text):
    """Draws `text` in colour on a transparent canvas just big enough for it (plus a border)."""
    from PIL import Image, ImageDraw
    left, top, right, bottom = font.getbbox(text)
    border = 8
    width = max(1, right - left) + 2 * border
    height = max(1, bottom - top) + 2 * border
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((border - left, border - top), text, font=font, embedded_color=True)
    return canvas


class GlyphChecker:
    """Decides whether the font really draws an emoji, rather than .notdef, nothing, or a fallback of pieces.

    Four tests: the drawing has visible pixels; it differs from the drawing of a code point known to be absent
    (MISSING_PROBE, the font's .notdef); it differs from the font's "unknown flag" (what Noto draws for a flag
    sequence it does not know); and its advance is that of one glyph (a ZWJ sequence the font lacks is shaped as
    several glyphs side by side, which is wider).
    """

    def __init__(self, font):
        self.font = font
        self.notdef = render_rgba(font, MISSING_PROBE).tobytes()
        self.unknown_flag = render_rgba(font, UNKNOWN_FLAG_PROBE).tobytes()
        self.one_glyph_advance = font.getlength(PRESENT_PROBE)
        require_colour_glyph(render_rgba(font, PRESENT_PROBE))

    def problem(self, text, rgba):
        """None when `rgba` (the drawing of `text`) is a real emoji glyph, else why not."""
        if rgba.getchannel("A").getbbox() is None:
            return "not in font (empty glyph)"
        pixels = rgba.tobytes()
        if pixels == self.notdef:
            return "not in font (.notdef glyph)"
        if pixels == self.unknown_flag:
            return "not in font (unknown-flag glyph)"
        if self.font.getlength(text) > 1.5 * self.one_glyph_advance:
            return "not in font (drawn as several glyphs)"
        return None


def require_colour_glyph(rgba):
    """UsageError unless the probe emoji (a yellow face) is drawn, and in colour: a plain text font draws grey."""
    if rgba.getchannel("A").getbbox() is None:
        raise UsageError("the font has no emoji glyphs (U+1F600 is empty): not a colour emoji font")
    import numpy as np
    pixels = np.asarray(rgba, dtype=np.int16)
    opaque = pixels[pixels[..., 3] >= 128][:, :3]
    saturation = int((opaque.max(axis=1) - opaque.min(axis=1)).max()) if len(opaque) else 0
    if saturation < 64:
        raise UsageError("the font draws U+1F600 without colour: not a colour emoji font")


def square_on_white(rgba, size):
    """Crops to the visible pixels, centres in a square with a MARGIN_FRACTION border, flattens on white, resizes."""
    from PIL import Image
    cropped = rgba.crop(rgba.getchannel("A").getbbox())
    content = max(cropped.size)
    side = int(-(-content // (1.0 - 2.0 * MARGIN_FRACTION)))  # ceil: content + 2 margins
    square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    square.paste(cropped, ((side - cropped.width) // 2, (side - cropped.height) // 2))
    white = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    flat = Image.alpha_composite(white, square).convert("RGB")  # flatten before resizing: no dark fringes
    return flat.resize((size, size), Image.Resampling.LANCZOS)


class EmojiOne:
    """The EmojiOne 2 artwork of ruby-gemojione: an SVG per emoji, keyed by its code points without U+FE0F."""

    def __init__(self, folder):
        root = Path(folder)
        index = root / "config" / "index.json"
        if not index.is_file():
            raise UsageError(f"EmojiOne artwork not found ('{index}' is missing): install the Debian package "
                             "ruby-gemojione, or pass --styles noto")
        if shutil.which("rsvg-convert") is None:
            raise UsageError("rsvg-convert is missing: install the Debian package librsvg2-bin, or pass --styles noto")
        self.svgs = {}
        for entry in json.loads(index.read_text(encoding="utf-8")).values():
            for code in [entry["unicode"]] + list(entry.get("unicode_alternates", [])):
                svg = root / "assets" / "svg" / f"{entry['unicode']}.svg"
                if svg.is_file():
                    self.svgs.setdefault(self.key_of_codes(code.split("-")), svg)

    @staticmethod
    def key_of_codes(codes):
        return tuple(int(c, 16) for c in codes if c and int(c, 16) != 0xFE0F)

    def svg_for(self, text):
        return self.svgs.get(tuple(ord(c) for c in text if ord(c) != 0xFE0F))

    @staticmethod
    def render(svg, side=256):
        """The SVG drawn at side x side (aspect kept) as RGBA."""
        from PIL import Image
        import io
        png = subprocess.run(["rsvg-convert", "-w", str(side), "-h", str(side), "-a", str(svg)],
                             capture_output=True, check=False)
        if png.returncode != 0:
            return None
        return Image.open(io.BytesIO(png.stdout)).convert("RGBA")


# ---------------------------------------------------------------------------------------------------------------
# Names, captions, ids, splits, groups
# ---------------------------------------------------------------------------------------------------------------

def emoji_id(text):
    return "-".join(f"{ord(c):04x}" for c in text)


def codepoints_label(text):
    return " ".join(f"U+{ord(c):04X}" for c in text)


def is_flag_sequence(text):
    """Country flags (two regional indicators) and subdivision flags (black flag + tag characters)."""
    cps = [ord(c) for c in text]
    if len(cps) == 2 and all(0x1F1E6 <= cp <= 0x1F1FF for cp in cps):
        return True
    return len(cps) > 2 and cps[0] == 0x1F3F4 and all(0xE0020 <= cp <= 0xE007F for cp in cps[1:])


def clean_name(short_name):
    """':Côte_d’Ivoire:' -> "cote d'ivoire": no colons, spaces for underscores, plain lower-case ASCII."""
    text = short_name.strip().strip(":").replace("_", " ")
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return " ".join(text.lower().split())


# Spelling exceptions to "an before a vowel": these sound like a consonant (or the h is silent).
A_PREFIXES = ("one", "uni", "eu", "ewe", "use")
AN_PREFIXES = ("hour", "honest", "honou")


def article(phrase):
    if phrase.startswith(AN_PREFIXES):
        return "an"
    if phrase.startswith(A_PREFIXES):
        return "a"
    return "an" if phrase[:1] in "aeiou" else "a"


def caption_variants(text, data):
    """The canonical name first, then the aliases, then templated phrasings of the name; de-duplicated, in order.

    The emoji package drops CLDR's "flag:" prefix from flag names (":United_States:"), so flag sequences get it
    back as "flag of ..." (otherwise the caption would not say the picture is a flag).
    """
    name = clean_name(data["en"])
    if is_flag_sequence(text):
        name = f"flag of {name}"
    aliases = [clean_name(a) for a in data.get("alias", [])]
    templated = [f"{article(name)} {name}", f"{name} emoji", f"an emoji of {article(name)} {name}", f"{name} icon"]
    out = []
    for caption in [name] + aliases + templated:
        if caption and caption not in out:
            out.append(caption)
    return out


def split_of(item_id, heldout_fraction):
    """Fixed held-out rule: the first 8 hex digits of sha256(id), as a fraction of 2**32."""
    value = int(hashlib.sha256(item_id.encode("ascii")).hexdigest()[:8], 16)
    return "heldout" if value / 2**32 < heldout_fraction else "train"


def group_of(text, name):
    """A coarse category for reports (the emoji package has no CLDR groups): flag, keycap, face, person, hand,
    else the Unicode block of the first code point."""
    words = set(name.replace(",", " ").replace(":", " ").split())
    if is_flag_sequence(text) or "flag" in words:
        return "flag"
    if "keycap" in words or "\u20e3" in text:
        return "keycap"
    if "face" in words:
        return "face"
    if words & PERSON_WORDS:
        return "person"
    if "hand" in words or "hands" in words:
        return "hand"
    first = ord(text[0])
    for low, high, label in BLOCKS:
        if low <= first <= high:
            return label
    return "other"


# ---------------------------------------------------------------------------------------------------------------
# The build
# ---------------------------------------------------------------------------------------------------------------

def candidate_emoji(emoji_module):
    """Fully-qualified emoji without skin-tone modifiers, sorted by id, as (text, data) pairs."""
    status = getattr(emoji_module, "STATUS", {}).get(FULLY_QUALIFIED, 2)
    chosen = []
    skin_toned = 0
    for text, data in emoji_module.EMOJI_DATA.items():
        if data.get("status") != status:
            continue
        if any(ord(c) in SKIN_TONES for c in text):
            skin_toned += 1
            continue
        chosen.append((text, data))
    chosen.sort(key=lambda pair: emoji_id(pair[0]))
    return chosen, skin_toned


def build_items(emoji_module, font, images_dir, size, heldout_fraction, limit, emojione=None):
    """Renders every candidate into images_dir; returns what was kept and what was skipped (and why). With
    `emojione`, every emoji Noto draws is drawn a second time from the EmojiOne artwork, when it has one."""
    result = BuildResult()
    candidates, skin_toned = candidate_emoji(emoji_module)
    result.candidates = len(candidates) + skin_toned
    result.skipped["skin-tone variant"] = skin_toned
    if limit:
        result.skipped["beyond --limit"] = max(0, len(candidates) - limit)
        candidates = candidates[:limit]
    checker = GlyphChecker(font)
    for text, data in candidates:
        item_id = emoji_id(text)
        captions = caption_variants(text, data)
        rgba = render_rgba(font, text)
        problem = checker.problem(text, rgba)
        if problem is not None:
            result.skipped[problem] = result.skipped.get(problem, 0) + 1
            result.not_in_font.append({"id": item_id, "name": captions[0], "reason": problem})
            continue
        square_on_white(rgba, size).save(images_dir / f"{item_id}.png")
        split, group = split_of(item_id, heldout_fraction), group_of(text, captions[0])
        result.items.append(Item(item_id, text, captions, split, group, "noto", item_id))
        if emojione is None:
            continue
        svg = emojione.svg_for(text)
        drawn = emojione.render(svg) if svg is not None else None
        if drawn is None or drawn.getchannel("A").getbbox() is None:
            reason = "emojione: no artwork" if svg is None else "emojione: svg not drawable"
            result.skipped[reason] = result.skipped.get(reason, 0) + 1
            continue
        other = f"emojione-{item_id}"
        square_on_white(drawn, size).save(images_dir / f"{other}.png")
        result.items.append(Item(other, text, captions, split, group, "emojione", item_id))
    return result


def manifest_lines(items):
    for it in items:
        yield json.dumps({"id": it.id, "file": f"images/{it.id}.png", "caption": it.captions[0],
                          "captions": it.captions, "split": it.split, "codepoints": codepoints_label(it.text),
                          "group": it.group, "style": it.style, "base_id": it.base_id}, ensure_ascii=True)


def write_text(path, lines):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(line + "\n")


def summary(result, args, versions):
    splits = {s: sum(1 for it in result.items if it.split == s) for s in ("train", "heldout")}
    styles = {s: sum(1 for it in result.items if it.style == s) for s in args.styles}
    groups = {}
    for it in result.items:
        groups[it.group] = groups.get(it.group, 0) + 1
    return {
        "builder": BUILDER_VERSION,
        "size": args.size,
        "font": Path(args.font).name,
        "font_pixel_size": FONT_PIXEL_SIZE,
        "styles": list(args.styles),
        "margin_fraction": MARGIN_FRACTION,
        "heldout_fraction": args.heldout_fraction,
        "heldout_rule": "int(sha256(id).hexdigest()[:8], 16) / 2**32 < heldout_fraction",
        "limit": args.limit,
        "counts": {
            "fully_qualified": result.candidates,
            "rendered": len(result.items),
            "styles": styles,
            "skipped": dict(sorted(result.skipped.items())),
            "train": splits["train"],
            "heldout": splits["heldout"],
            "caption_variants_train": sum(len(it.captions) for it in result.items if it.split == "train"),
            "groups": dict(sorted(groups.items())),
        },
        "not_in_font": result.not_in_font,
        "versions": versions,
    }


def licenses_text(versions, font_name):
    v = {k: (val or "unknown") for k, val in versions.items()}
    return f"""# Licences of this dataset

Generated offline by `training/data/build_emoji_dataset.py` ({BUILDER_VERSION}).

## Pictures: Noto Color Emoji

Every `images/*.png` is a rendering of a glyph of the Noto Color Emoji font (`{font_name}`), from the Debian
package `fonts-noto-color-emoji` version {v["fonts-noto-color-emoji"]}. The font is Copyright 2013-2017 Google Inc.
and Arjen Nienhuis, licensed under the **SIL Open Font License, Version 1.1** (https://openfontlicense.org; full
text in `/usr/share/doc/fonts-noto-color-emoji/copyright`). The pictures are cropped, centred on white and resized.

## Pictures: EmojiOne 2 (files `images/emojione-*.png`, when built with the emojione style)

The second drawing style comes from the EmojiOne 2 SVG artwork shipped in the Debian package `ruby-gemojione`
version {v["ruby-gemojione"]}, rendered with `rsvg-convert` (Debian `librsvg2-bin` {v["librsvg2-bin"]}), then cropped,
centred on white and resized like the Noto pictures. The artwork is Copyright 2014 Ranks.com Inc. (EmojiOne),
licensed under **Creative Commons Attribution-ShareAlike 4.0 International** (CC BY-SA 4.0,
https://creativecommons.org/licenses/by-sa/4.0/; full text in `/usr/share/doc/ruby-gemojione/copyright`). The
modified pictures in this folder are shared under the same licence.

## Captions: Unicode CLDR names

The captions are the English short names (and aliases) of Unicode CLDR, lower-cased and turned into plain ASCII,
plus templated phrasings of them. They come from the python `emoji` package version {v["emoji"]}
(Debian package `python3-emoji` version {v["python3-emoji"]}):
- CLDR data: Copyright Unicode, Inc., **Unicode License v3** (https://www.unicode.org/license.txt).
- The python `emoji` package: **BSD-3-Clause** licence.

## Tools

Rendered with Pillow {v["pillow"]} (FreeType {v["freetype"]}, raqm {v["raqm"]}).
"""


def write_dataset(out_dir, args, emoji_module, font):
    """Builds the whole dataset into out_dir (an empty folder); returns the summary."""
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True)
    emojione = EmojiOne(args.emojione_dir) if "emojione" in args.styles else None
    result = build_items(emoji_module, font, images_dir, args.size, args.heldout_fraction, args.limit, emojione)
    result.items.sort(key=lambda it: it.id)
    versions = package_versions(emoji_module)
    write_text(out_dir / "manifest.jsonl", manifest_lines(result.items))
    write_text(out_dir / "captions.txt",
               (c for it in result.items if it.split == "train" and it.style == "noto" for c in it.captions))
    info = summary(result, args, versions)
    write_text(out_dir / "dataset.json", [json.dumps(info, indent=2, ensure_ascii=True)])
    write_text(out_dir / "LICENSES.md", [licenses_text(versions, Path(args.font).name).rstrip("\n")])
    return info


def replace_folder(built, out_dir):
    """Moves the freshly built folder to out_dir, replacing a previous dataset there (never other content)."""
    if out_dir.exists():
        if any(out_dir.iterdir()) and not (out_dir / "dataset.json").is_file():
            raise UsageError(f"--out '{out_dir}' is a non-empty folder that holds no dataset.json: "
                             "refusing to replace it")
        shutil.rmtree(out_dir)
    built.rename(out_dir)


def build(out_dir, args, emoji_module, font):
    """Builds next to out_dir, then swaps it in, so an interrupted build never leaves half a dataset."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        built = staging / "dataset"
        info = write_dataset(built, args, emoji_module, font)
        replace_folder(built, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return info


# ---------------------------------------------------------------------------------------------------------------
# Reproducibility check
# ---------------------------------------------------------------------------------------------------------------

def file_digests(folder):
    """{relative path: sha256} of every file under folder."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            out[path.relative_to(folder).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def compare_folders(expected, actual):
    """A list of differences between two dataset folders (empty when byte-identical)."""
    a, b = file_digests(expected), file_digests(actual)
    problems = [f"only in {expected}: {p}" for p in sorted(a.keys() - b.keys())]
    problems += [f"only in the rebuild: {p}" for p in sorted(b.keys() - a.keys())]
    problems += [f"differs: {p}" for p in sorted(a.keys() & b.keys()) if a[p] != b[p]]
    return problems, len(a)


def check(out_dir, args, emoji_module, font):
    """Rebuilds into a temporary folder and compares with out_dir file by file. Returns the exit status."""
    with tempfile.TemporaryDirectory(prefix="emoji-ds-check-") as tmp:
        rebuilt = Path(tmp) / "dataset"
        write_dataset(rebuilt, args, emoji_module, font)
        problems, n_files = compare_folders(out_dir, rebuilt)
    if problems:
        print(f"check FAILED: {len(problems)} difference(s) between {out_dir} and a rebuild:")
        for p in problems[:20]:
            print(f"  {p}")
        return 1
    print(f"check passed: a rebuild is byte-identical to {out_dir} ({n_files} files, manifest included)")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description="Build the offline emoji image/caption dataset (Noto Color Emoji + CLDR "
                                            "names).")
    p.add_argument("--out", required=True, help="output folder (replaced if it holds a previous dataset)")
    p.add_argument("--size", type=int, default=128, help="picture side in pixels (16..1024, default 128)")
    p.add_argument("--font", default=DEFAULT_FONT, help=f"colour emoji font (default {DEFAULT_FONT})")
    p.add_argument("--heldout-fraction", type=float, default=0.05,
                   help="fraction of emoji held out, by hash of the id (0..0.5, default 0.05)")
    p.add_argument("--limit", type=int, default=0, help="debug: only the first N emoji (by id)")
    p.add_argument("--styles", default=",".join(STYLES),
                   help="drawing styles, comma-separated: noto (the font) and emojione (ruby-gemojione's artwork); "
                        "default both")
    p.add_argument("--emojione-dir", default=GEMOJIONE_DIR, help=f"the gemojione gem folder (default {GEMOJIONE_DIR})")
    p.add_argument("--check", action="store_true",
                   help="rebuild into a temporary folder and verify it is byte-identical to --out (which is built "
                        "first when it holds no dataset yet)")
    return p.parse_args(argv)


def validate(args):
    if not 16 <= args.size <= 1024:
        raise UsageError(f"--size must be within 16..1024, got {args.size}")
    if not 0.0 <= args.heldout_fraction <= 0.5:
        raise UsageError(f"--heldout-fraction must be within [0, 0.5], got {args.heldout_fraction}")
    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    styles = [x.strip() for x in args.styles.split(",") if x.strip()]
    bad = [x for x in styles if x not in STYLES]
    if bad or "noto" not in styles:
        raise UsageError(f"--styles must list noto and optionally emojione, got '{args.styles}'")
    args.styles = tuple(dict.fromkeys(styles))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out '{out}' exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "dataset.json").is_file():
        raise UsageError(f"--out '{out}' is a non-empty folder that holds no dataset.json: refusing to replace it")
    return out


def print_summary(info, out_dir, seconds):
    c = info["counts"]
    print(f"wrote {out_dir} in {seconds:.1f} s: {c['rendered']} emoji rendered at {info['size']} px "
          f"(of {c['fully_qualified']} fully-qualified)")
    for reason, n in c["skipped"].items():
        print(f"  skipped {n:5d}: {reason}")
    for miss in info["not_in_font"][:10]:
        print(f"    {miss['id']} ({miss['name']}): {miss['reason']}")
    print(f"  styles: " + ", ".join(f"{n} {s}" for s, n in c["styles"].items()))
    print(f"  split: {c['train']} train, {c['heldout']} heldout (fraction {info['heldout_fraction']})")
    print(f"  captions.txt: {c['caption_variants_train']} caption variants of train items")


def main(argv=None):
    try:
        args = parse_args(argv)
        out_dir = validate(args)
        emoji_module = import_emoji_module()
        font = load_font(args.font)
        if args.check and (out_dir / "dataset.json").is_file():
            return check(out_dir, args, emoji_module, font)
        start = time.monotonic()
        info = build(out_dir, args, emoji_module, font)
        print_summary(info, out_dir, time.monotonic() - start)
        return check(out_dir, args, emoji_module, font) if args.check else 0
    except UsageError as e:
        print(f"build_emoji_dataset: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
