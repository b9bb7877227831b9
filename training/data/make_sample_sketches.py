#!/usr/bin/env python3
"""Draws the sample sketches shipped in assets/sketches (dark pen strokes on white, 256 px: the bundled model's
sketch canvas). Deterministic; rerun to regenerate: python training/data/make_sample_sketches.py --out assets/sketches
"""
import argparse
import math
import os

from PIL import Image, ImageDraw

SIDE = 256
PEN = 4  # the app's default brush on a 256 px canvas is ~4 px wide


def canvas():
    img = Image.new("L", (SIDE, SIDE), 255)
    return img, ImageDraw.Draw(img)


def apple(d):
    d.ellipse([52, 70, 204, 212], outline=0, width=PEN)           # body
    d.line([128, 72, 136, 36], fill=0, width=PEN)                 # stalk
    d.ellipse([138, 30, 184, 58], outline=0, width=PEN)           # leaf


def house(d):
    d.rectangle([60, 120, 196, 210], outline=0, width=PEN)        # walls
    d.line([48, 124, 128, 50, 208, 124], fill=0, width=PEN)       # roof
    d.rectangle([112, 160, 144, 210], outline=0, width=PEN)       # door
    d.rectangle([76, 140, 100, 164], outline=0, width=PEN)        # window


def smiley(d):
    d.ellipse([40, 40, 216, 216], outline=0, width=PEN)
    d.ellipse([88, 90, 104, 110], fill=0)
    d.ellipse([152, 90, 168, 110], fill=0)
    d.arc([80, 110, 176, 180], start=20, end=160, fill=0, width=PEN)


def heart(d):
    pts = []
    for i in range(200):
        t = 2 * math.pi * i / 200
        x = 16 * math.sin(t) ** 3
        y = 13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t)
        pts.append((128 + 5.5 * x, 122 - 5.5 * y))
    d.line(pts + [pts[0]], fill=0, width=PEN, joint="curve")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name, draw in (("apple", apple), ("house", house), ("smiley", smiley), ("heart", heart)):
        img, d = canvas()
        draw(d)
        img.save(os.path.join(a.out, f"{name}.png"), optimize=False)
        print(f"wrote {os.path.join(a.out, name + '.png')}")


if __name__ == "__main__":
    main()
