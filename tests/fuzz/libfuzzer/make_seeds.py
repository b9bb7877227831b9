#!/usr/bin/env python3
"""Writes small synthetic seed inputs for the libFuzzer targets: OUT/<target>/<name> (target: fuzz_png, ...).

run.sh adds the repository's own files (tests/fixtures safetensors and config.json files, assets/sketches PNGs,
tests/gui replays) next to these. The synthetic seeds cover what those lack: every dtype and header shape of the
safetensors format, PNG colour types and text chunks, each replay event, the settings' text forms, one deeply
nested JSON value per JSON reader (a hostile-input class of its own: code that recurses over nesting, like
nlohmann's dump() and copy, runs out of stack), and "hostile_*" inputs that reproduce earlier findings, kept as
regression seeds. Standard library only.
"""
import base64
import json
import os
import struct
import sys
import zlib

DEEP = 100_000  # nesting depth of the "deep" seeds: far past what a recursive walk fits in an 8 MB stack


def deep_array(depth=DEEP):
    return "[" * depth + "]" * depth


def write(out, target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


# ---- safetensors ---------------------------------------------------------------------------------------------------

def safetensors(tensors, metadata=None, pad=True, header_text=None):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data, offset = {}, b"", 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = header_text if header_text is not None else json.dumps(header, separators=(",", ":"))
    if pad:
        text += " " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text.encode() + data


def safetensors_seeds(out):
    t = "fuzz_safetensors_header"
    write(out, t, "f32.safetensors", safetensors([("w", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))]))
    write(out, t, "all_dtypes.safetensors", safetensors([
        ("f64", "F64", [1], struct.pack("<d", 0.5)), ("f32", "F32", [1], struct.pack("<f", 0.5)),
        ("f16", "F16", [2], b"\x00\x3c\x00\xc0"), ("bf16", "BF16", [2], b"\x80\x3f\x00\xc0"),
        ("i64", "I64", [1], struct.pack("<q", -7)), ("i32", "I32", [1], struct.pack("<i", -7)),
        ("i16", "I16", [1], struct.pack("<h", -7)), ("i8", "I8", [3], b"\x01\x80\x7f"),
        ("u8", "U8", [3], b"\x00\x80\xff"), ("b", "BOOL", [2], b"\x00\x01")]))
    write(out, t, "metadata.safetensors", safetensors([("a", "U8", [2, 1], b"\x01\x02")], metadata={"format": "pt"}))
    write(out, t, "empty_tensor.safetensors", safetensors([("e", "F32", [0, 3], b""), ("s", "F32", [], b"\x00" * 4)]))
    write(out, t, "no_tensors.safetensors", safetensors([], metadata={}))
    write(out, t, "unpadded.safetensors", safetensors([("m", "F32", [3], struct.pack("<3f", 1, 2, 3))], pad=False))
    write(out, t, "bad_bool.safetensors", safetensors([("b", "BOOL", [2], b"\x00\x02")]))
    write(out, t, "deep_offsets.safetensors",
          safetensors([], header_text='{"t":{"dtype":"F32","shape":[1],"data_offsets":' + deep_array() + "}}"))
    write(out, t, "deep_shape.safetensors",
          safetensors([], header_text='{"t":{"dtype":"F32","shape":[' + deep_array() + '],"data_offsets":[0,4]}}'))


# ---- JSON configs --------------------------------------------------------------------------------------------------

def config_seeds(out):
    t = "fuzz_config"
    write(out, t, "sprint_pipeline.json", json.dumps(
        {"complex_human_instruction": False, "max_sequence_length": 64, "lowercase": True, "sketch_canvas": 256}))
    write(out, t, "scheduler_config.json", json.dumps(
        {"_class_name": "SCMScheduler", "prediction_type": "trigflow", "sigma_data": 0.5, "num_train_timesteps": 1000}))
    write(out, t, "model_index.json", json.dumps({"_class_name": "SanaSprintPipeline", "vae": ["diffusers", "AutoencoderDC"]}))
    write(out, t, "controlnet_before_block.json", json.dumps(
        {"in_channels": 4, "num_attention_heads": 2, "attention_head_dim": 8, "num_layers": 1, "caption_channels": 8,
         "cross_attention_dim": 16, "num_cross_attention_heads": 2, "cross_attention_head_dim": 8,
         "control_injection": "before_block", "qk_norm": "rms_norm_across_heads", "guidance_embeds": True}))
    write(out, t, "gemma2_rope_4x.json", json.dumps(
        {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 1, "head_dim": 8, "rope_scaling": {"rope_type": "default"}, "rope_theta": 10000.0,
         "eos_token_id": [1, 2], "sliding_window": None, "layer_types": ["full_attention", "full_attention"]}))
    # Accepted by from_json, then to_json casts it to int64_t (undefined behaviour past 2^63).
    write(out, t, "hostile_gemma2_huge_query_scalar.json", json.dumps(
        {"vocab_size": 64, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "num_key_value_heads": 1, "head_dim": 8, "query_pre_attn_scalar": 1e300}))
    write(out, t, "deep_value.json", '{"in_channels":' + deep_array() + "}")
    write(out, t, "deep_injection.json", '{"control_injection":' + deep_array() + "}")


# ---- PNG -----------------------------------------------------------------------------------------------------------

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png(width, height, color_type, bit_depth, rows, extra=(), interlace=0):
    """rows: the filtered scanlines' raw bytes (each starting with its filter byte)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, interlace)
    body = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    for kind, data in extra:
        body += chunk(kind, data)
    return body + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def itxt(key, text, compressed=False):
    value = zlib.compress(text.encode()) if compressed else text.encode()
    return (b"iTXt", key.encode() + b"\x00" + (b"\x01\x00" if compressed else b"\x00\x00") + b"\x00\x00" + value)


def png_seeds(out):
    t = "fuzz_png"
    gray = png(2, 2, 0, 8, b"\x00\x00\xff\x00\xff\x00")
    condition_b64 = base64.b64encode(gray).decode()
    settings = [itxt("sprint:prompt", "a cat"), itxt("sprint:seed", "7"), itxt("sprint:steps", "2"),
                itxt("sprint:guidance", "4.5"), itxt("sprint:control_scale", "0.7"), itxt("sprint:thickness", "2"),
                itxt("sprint:size", "64x64"), itxt("sprint:model_path", "sprint"), itxt("sprint:sketch", "s.png"),
                itxt("sprint:condition", condition_b64, compressed=True), itxt("sprint:timesteps", "1.5708,1.3,0")]
    write(out, t, "rgb_settings.png", png(2, 1, 2, 8, b"\x00" + b"\x10\x20\x30\x40\x50\x60", settings))
    write(out, t, "gray.png", gray)
    write(out, t, "a1111.png", png(1, 1, 0, 8, b"\x00\x80", [
        (b"tEXt", b"parameters\x00a fox\nSteps: 3, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model: sd15")]))
    write(out, t, "palette_trns.png", png(2, 2, 3, 2, b"\x00\x10\x00\x40", [
        (b"PLTE", b"\x00\x00\x00\xff\xff\xff\xff\x00\x00"), (b"tRNS", b"\x00\x80")]))
    write(out, t, "gray1.png", png(9, 1, 0, 1, b"\x00\xaa\x80"))
    write(out, t, "rgba16_interlaced.png", png(3, 3, 6, 16, b"".join(
        b"\x00" + bytes(range(8 * w)) for w in (1, 1, 2, 1, 1, 3)), interlace=1))
    # A text chunk that declares 2 GB in a 60-byte file: libpng allocates and zeroes its buffer before reading.
    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    write(out, t, "hostile_huge_text_chunk.png", head + struct.pack(">I", 0x7FF00000) + b"tEXtsprint:prompt\x00a cat")
    write(out, t, "gray_alpha_ztxt.png", png(1, 1, 4, 8, b"\x00\x7f\xff", [
        (b"zTXt", b"sprint:prompt\x00\x00" + zlib.compress(b"zipped")), (b"tEXt", b"sprint:seed\x00" + b"1")]))


# ---- settings text -------------------------------------------------------------------------------------------------

def settings_seeds(out):
    t = "fuzz_settings"
    write(out, t, "a1111.txt", "a red fox\nin the snow\nSteps: 4, Sampler: SCM, CFG scale: 3.25, "
                               "Seed: 9223372036854775807, Size: 512x768, Model: sprint, Control scale: 0.7")
    write(out, t, "a1111_other_tool.txt", 'a cat\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a, CFG scale: 7, '
                                          'Seed: 42, Size: 512x512, Model hash: abc123, Lora hashes: "x: 1, y: 2"')
    pairs = [("sprint:prompt", "p"), ("sprint:seed", "5"), ("sprint:steps", "3"), ("sprint:guidance", "1e-2"),
             ("sprint:control_scale", "1.5"), ("sprint:thickness", "3"), ("sprint:size", "32X48"),
             ("sprint:timesteps", "1.5,0"), ("sprint:condition", "iVBORw0KGgo="), ("Software", "x")]
    write(out, t, "chunks.bin", "\x00".join(k + "\x00" + v for k, v in pairs))
    write(out, t, "settings.json", json.dumps({"prompt": "a cat", "seed": 7, "steps": 2, "guidance": 4.5,
                                               "control_scale": 1.0, "thickness": 2, "size": "64x64",
                                               "timesteps": "1.5708,0", "model_path": "m"}))
    # Taken from JSON (finite, in range), refused when read back from the PNG text it is written to (strtod ERANGE).
    write(out, t, "hostile_subnormal_guidance.json", '{"guidance": 1e-310}')
    write(out, t, "deep_seed.json", '{"seed":' + deep_array() + "}")


# ---- replay --------------------------------------------------------------------------------------------------------

def replay_seeds(out):
    t = "fuzz_replay"
    events = [{"t": 0.0, "type": "prompt", "text": "a cat"},
              {"type": "set", "name": "steps", "value": 2}, {"type": "set", "name": "size", "value": "64x64"},
              {"type": "set", "name": "brush_radius", "value": 3}, {"type": "set", "name": "eraser", "value": True},
              {"t": 0.1, "type": "stroke", "points": [[0.2, 0.2], [0.8, 0.7], [1.5, -0.5]], "radius": 0.03,
               "eraser": False, "duration": 0.2},
              {"type": "mouse_stroke", "points": [[0.1, 0.1], [0.3, 0.1]], "duration": 0.1},
              {"type": "undo"}, {"type": "redo"}, {"type": "wait_idle"}, {"type": "save_output", "suffix": "a"},
              {"type": "pause", "seconds": 0.05}, {"type": "clear"}, {"type": "undo"},
              {"type": "stroke", "points": [[0.5, 0.5]], "radius": 1, "duration": 0},
              {"type": "select_history", "index": 0}, {"type": "import", "path": "x.png", "mode": "sketch"}]
    write(out, t, "all_events.json", json.dumps({"events": events}))
    write(out, t, "list.json", json.dumps([{"type": "stroke", "points": [[0, 0], [100, 100]], "radius": 1}]))
    # An unchecked panel setting: a brush radius of 1e300 (inf as a float) reaches the rasteriser's float -> int.
    write(out, t, "hostile_huge_brush_radius.json", json.dumps({"events": [
        {"type": "set", "name": "brush_radius", "value": 1e300},
        {"type": "mouse_stroke", "points": [[0.5, 0.5], [0.6, 0.6]], "duration": 0.1}]}))
    write(out, t, "deep_value.json", '{"events":[{"type":"set","name":"prompt","value":' + deep_array() + "}]}")
    write(out, t, "deep_point.json", '{"events":[{"type":"stroke","points":[' + deep_array() + "]}]}")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_seeds.py OUT_DIR")
    out = sys.argv[1]
    safetensors_seeds(out)
    config_seeds(out)
    png_seeds(out)
    settings_seeds(out)
    replay_seeds(out)


if __name__ == "__main__":
    main()
